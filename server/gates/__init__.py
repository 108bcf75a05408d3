"""Gate passages and decisions, signed gate and lock commands, release records.

Kept import-light: `server.config` imports `server.gates.config`.
"""
