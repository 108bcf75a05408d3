"""Receiving thousands of messages a second through aiomqtt 2.x and paho-mqtt 2.2.

Three costs per received message, found by profiling the server's ingest (py-spy, GIL
samples, `bench/bench_server.py`, 2 cores) and removed here without changing what a
caller sees:

- **aiomqtt's message iterator** (`async for m in client.messages`) creates a task and
  runs `asyncio.wait` for every message, then wraps paho's message in one of its own:
  ≈ 22 % of the ingest's interpreter time. `deliver_to` hands paho's messages to a
  callback instead, in the event loop's thread, as paho parses them; aiomqtt's queue
  then stays empty and `client.messages` only waits for the connection to end (it raises
  `MqttError` then, as before).
- **paho's `MQTTMessageInfo`** builds a `threading.Condition` for every message, also
  for every message it receives, where it is never used (it serves `publish`'s
  `wait_for_publish`): ≈ 9 %. `install` makes the condition when it is first used.
- **paho's per-topic callbacks**: `_handle_on_message` walks its topic-filter tree for
  every message even when no per-topic callback is set (none of BondWatch's clients set
  one): ≈ 6 %. `install` goes straight to `on_message` while the tree is empty.

Only paho-mqtt 2.2.x is changed, the version these were checked against
(`tests/contract/test_mqtt_receive.py` runs paho's own and these side by side).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_client
from paho.mqtt.enums import MQTTErrorCode

from contract.mqtt_properties import paho_checked

log = logging.getLogger(__name__)

_original: dict[str, Any] = {
    "info_init": paho_client.MQTTMessageInfo.__init__,
    "handle_on_message": paho_client.Client._handle_on_message,
}
_creating = threading.Lock()


class _LazyCondition:
    """A `threading.Condition` made when first used: the four uses paho makes of it."""

    __slots__ = ("_condition",)

    def __init__(self) -> None:
        self._condition: threading.Condition | None = None

    def _get(self) -> threading.Condition:
        condition = self._condition
        if condition is None:
            with _creating:  # two threads' first use gets one condition
                if self._condition is None:
                    self._condition = threading.Condition()
                condition = self._condition
        return condition

    def __enter__(self) -> bool:
        return self._get().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._get().__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        return self._get().wait(timeout)

    def notify(self, n: int = 1) -> None:
        self._get().notify(n)

    def notify_all(self) -> None:
        self._get().notify_all()


def _info_init(self: paho_client.MQTTMessageInfo, mid: int) -> None:
    self.mid = mid
    self._published = False
    self._condition = _LazyCondition()  # type: ignore[assignment]
    self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
    self._iterpos = 0


def _handle_on_message(self: paho_client.Client, message: paho_client.MQTTMessage) -> None:
    if self._on_message_filtered._root._children:  # per-topic callbacks: paho's own way
        _original["handle_on_message"](self, message)
        return
    on_message = self.on_message
    if on_message is None:
        return
    with self._in_callback_mutex:
        try:
            on_message(self, self._userdata, message)
        except Exception as err:
            self._easy_log(paho_client.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
            if not self.suppress_exceptions:
                raise


def installed() -> bool:
    return paho_client.MQTTMessageInfo.__init__ is _info_init


def install() -> bool:
    """Apply the two paho changes (idempotent). False, and paho left as it is, for a paho
    version this module was not checked against."""
    if installed():
        return True
    if not paho_checked("received messages handled as paho handles them"):
        return False
    paho_client.MQTTMessageInfo.__init__ = _info_init  # type: ignore[method-assign]
    paho_client.Client._handle_on_message = _handle_on_message  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """paho's own methods again (for the comparison test)."""
    paho_client.MQTTMessageInfo.__init__ = _original["info_init"]  # type: ignore[method-assign]
    paho_client.Client._handle_on_message = _original["handle_on_message"]  # type: ignore[method-assign]


Received = Callable[[paho_client.MQTTMessage], None]


def deliver_to(client: aiomqtt.Client, callback: Received) -> None:
    """Hand every message `client` receives to `callback` — paho's `MQTTMessage`
    (`topic`, `payload`, `mid`, `qos`) — in the event loop's thread, as it is parsed.

    Call it before connecting. `client.messages` then yields nothing; iterate it only to
    learn that the connection ended (it raises `aiomqtt.MqttError`). `callback` must
    not raise: an exception escapes into paho's read loop, as one from paho's own
    `on_message` would."""

    def on_message(_paho: paho_client.Client, _userdata: Any, message: Any) -> None:
        callback(message)

    client._client.on_message = on_message
