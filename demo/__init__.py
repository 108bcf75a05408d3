"""`bondwatch-demo`: the whole system on one machine, from a checkout (`make demo`).

A development package: it starts the simulated devices, the agents and the server as
child processes (`devtools`), and is not part of any deployable wheel.
"""
