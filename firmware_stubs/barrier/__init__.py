"""Simulated barrier controller: a Modbus RTU relay/IO module, the arm, the loop detector.

Run `python -m firmware_stubs.barrier --unit-id 1 --control-port 0`; see
`docs/barrier-modbus.md` for the control commands.
"""
