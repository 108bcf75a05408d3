"""Barrier and loop detector behind a Modbus RTU relay/IO module (RS-485).

Public API: `BarrierDriver`, `ModbusBarrierConfig`, `BarrierStatus`, `BarrierResult`,
`BarrierRegisterMap`. See `docs/barrier-modbus.md`.
"""
