"""Sub-package reassembly (JT/T 808 §4.4.3, header bit 13): fragments in, whole body out.

The fragments of one message share its id and total, carry indexes 1…total and
consecutive serial numbers, so a message is known by (id, total, the serial of its
fragment 1). Fragments may arrive in any order and repeated; a message whose fragments
do not all arrive within `timeout_s` is dropped (its fragments were never answered, so
the device sends them again). Pure: the caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.elock.header import MAX_BODY_LENGTH, Header
from devices.errors import FrameError

#: Most fragments of one message accepted (64 × 1023 bytes: 65 KB, far above any report).
MAX_PACKETS = 64


@dataclass
class _Partial:
    started: float
    parts: dict[int, bytes] = field(default_factory=dict)
    headers: dict[int, Header] = field(default_factory=dict)


@dataclass(frozen=True)
class Reassembled:
    """A whole message: its id, version, body, and the headers of all its fragments
    (each is answered once the message is stored)."""

    msg_id: int
    version: int | None
    body: bytes
    fragments: tuple[Header, ...]


class Reassembler:
    """Collects the fragments of one connection's sub-packaged messages."""

    def __init__(self, timeout_s: float = 60.0, max_messages: int = 4) -> None:
        self.timeout_s = timeout_s
        self.max_messages = max_messages
        self._partials: dict[tuple[int, int, int], _Partial] = {}
        self.expired = 0

    def add(self, header: Header, data: bytes, now: float) -> Reassembled | None:
        """Add one fragment; the whole message once its last fragment is in, else None.

        Raises `FrameError` for an impossible fragment (index 0 or above the total, a
        total above `MAX_PACKETS`, a fragment longer than a frame's body can be)."""
        total, index = header.packet_total or 0, header.packet_index or 0
        if not 1 <= total <= MAX_PACKETS:
            raise FrameError(f"sub-package total {total} is not 1…{MAX_PACKETS}", data)
        if not 1 <= index <= total:
            raise FrameError(f"sub-package index {index} is not 1…{total}", data)
        if len(data) > MAX_BODY_LENGTH:
            raise FrameError(f"sub-package of {len(data)} bytes", data)
        self.expire(now)
        key = (header.msg_id, total, (header.serial - (index - 1)) & 0xFFFF)
        partial = self._partials.get(key)
        if partial is None:
            while len(self._partials) >= self.max_messages:  # the oldest gives way
                del self._partials[next(iter(self._partials))]
                self.expired += 1
            partial = self._partials[key] = _Partial(now)
        partial.parts[index] = data
        partial.headers[index] = header
        if len(partial.parts) < total:
            return None
        del self._partials[key]
        body = b"".join(partial.parts[i] for i in range(1, total + 1))
        return Reassembled(
            header.msg_id,
            header.version,
            body,
            tuple(partial.headers[i] for i in range(1, total + 1)),
        )

    def expire(self, now: float) -> None:
        for key in [k for k, p in self._partials.items() if now - p.started > self.timeout_s]:
            del self._partials[key]
            self.expired += 1

    def __len__(self) -> int:
        return len(self._partials)
