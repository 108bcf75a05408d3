"""Telemetry export: positions and alarm counts to an InfluxDB v2 write API."""

from server.telemetry.config import TelemetrySettings
from server.telemetry.writer import TelemetryWriter, alarm_points, position_point

__all__ = ["TelemetrySettings", "TelemetryWriter", "alarm_points", "position_point"]
