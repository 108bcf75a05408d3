"""Live events for the console: the fan-out hub and `WS /api/v1/stream`."""

from server.stream.hub import Client, Hub, alarm_publisher, position_event
from server.stream.websocket import STREAM_LIMITS, stream_router

__all__ = ["STREAM_LIMITS", "Client", "Hub", "alarm_publisher", "position_event", "stream_router"]
