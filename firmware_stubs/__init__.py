"""Simulated device firmware for the far end of a virtual serial port.

Each device runs as `python -m firmware_stubs.<device>`, prints the pty path the
edge agent should open, then `READY`. Nothing here imports `edge` or `server`.
"""
