"""Development helpers shared by the tests, the benchmarks and the demo (not shipped).

`devtools.broker` runs a Mosquitto broker with the shipped settings on a free loopback
port; `devtools.processes` starts child processes that die with their parent.
"""
