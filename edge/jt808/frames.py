"""A connection's bytes → whole JT/T 808 messages, or bad frames with a precise reason.

Pure (the clock is passed in): the stream is cut at the 0x7E flags (`FrameSplitter`,
which resynchronises after garbage and drops a frame longer than `max_frame`), each
candidate is decoded strictly (`devices.elock.codec`, check code included), and
sub-packages are reassembled. Nothing here raises on input: every defect comes out as a
`BadFrame` whose `reason` is one of `BAD_FRAME_REASONS`, with the header when it could be
read, so that the device can be answered "bad message" (0x8001 result 2) and send again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from devices.elock.bodies import Body, decode_body
from devices.elock.codec import decode
from devices.elock.framing import FrameSplitter, unwrap
from devices.elock.header import Header, decode_header
from devices.errors import ChecksumError, FrameError
from edge.jt808.reassembly import Reassembler

#: Why a frame was not taken (metrics label `reason`).
BAD_FRAME_REASONS: Final = (
    "bad_check_code",  # the XOR check code does not match: line noise or a forgery
    "bad_escape",  # a 7D not followed by 01/02, or a bare 7E inside the frame
    "bad_length",  # the header's body length differs from the body
    "too_short",  # shorter than a header
    "bad_body",  # the body does not fit its message's layout
    "bad_subpackage",  # an impossible fragment index or total
    "encrypted",  # an encrypted body (not supported)
    "oversize",  # longer than `max_frame` on the wire: dropped by the splitter
    "garbage",  # bytes outside any frame
)


@dataclass(frozen=True)
class Frame:
    """A whole, decoded message; `fragments` are the headers to answer (one, or each
    fragment of a reassembled message)."""

    header: Header
    body: Body
    fragments: tuple[Header, ...]


@dataclass(frozen=True)
class BadFrame:
    reason: str
    detail: str
    header: Header | None = None
    size: int = 0


def classify(err: FrameError) -> str:
    """The `BAD_FRAME_REASONS` entry of a codec error."""
    if isinstance(err, ChecksumError):
        return "bad_check_code"
    text = str(err)
    if "escape" in text or "0x7E" in text:
        return "bad_escape"
    if "body length" in text:
        return "bad_length"
    if "too short for a JT/T 808 header" in text or "empty" in text:
        return "too_short"
    return "bad_body"


def readable_header(raw: bytes) -> Header | None:
    """The header of a rejected frame, when its outer form allows reading one."""
    try:
        content, _, _ = unwrap(raw)
        header, _ = decode_header(content, raw)
    except FrameError:
        return None
    return header


class FrameReader:
    """One connection's framing state: splitter, reassembler and counters."""

    def __init__(self, max_frame: int = 4096, reassembly_timeout_s: float = 60.0) -> None:
        self.max_frame = max_frame
        self._splitter = FrameSplitter(max_frame)
        self._reassembler = Reassembler(reassembly_timeout_s)

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame held (a slow sender's partial frame)."""
        return len(self._splitter._buffer)  # read-only peek

    def feed(self, data: bytes, now: float, reassemble: bool = True) -> list[Frame | BadFrame]:
        """The frames and refusals in `data` (`frames`, all at once)."""
        return list(self.frames(data, now, lambda: reassemble))

    def frames(
        self, data: bytes, now: float, reassemble: Callable[[], bool]
    ) -> Iterator[Frame | BadFrame]:
        """The frames and refusals in `data`, each decoded as it is asked for, so that
        what the one before it changed counts. Without `reassemble()` (a connection not
        yet authenticated) a sub-package is not held for its message: it comes out as a
        frame of its own, which the session refuses as it refuses any message before
        authentication — a stranger parks no fragments here. (Asked frame by frame: a
        terminal that sends its authentication and, without waiting, a fragment, in one
        read, has the fragment held once the authentication before it is taken.)"""
        before = self._splitter.discarded_bytes
        for raw in self._splitter.feed(data):
            yield self._one(raw, now, reassemble())
        dropped = self._splitter.discarded_bytes - before
        if dropped > self.max_frame:
            yield BadFrame("oversize", f"{dropped} bytes without a closing flag", None, dropped)
        elif dropped:
            yield BadFrame("garbage", f"{dropped} bytes outside any frame", None, dropped)

    def _one(self, raw: bytes, now: float, reassemble: bool) -> Frame | BadFrame:
        try:
            message = decode(raw)
        except FrameError as err:
            return BadFrame(classify(err), str(err), readable_header(raw), len(raw))
        header = message.header
        if header.encryption:
            return BadFrame("encrypted", f"encryption {header.encryption}", header, len(raw))
        if not header.is_subpackage or not reassemble:
            return Frame(header, message.body, (header,))
        data = message.body.encode(header.version)  # the fragment, kept raw by the codec
        try:
            whole = self._reassembler.add(header, data, now)
        except FrameError as err:
            return BadFrame("bad_subpackage", str(err), header, len(raw))
        if whole is None:
            return Frame(header, message.body, ())  # held: answered with the whole message
        try:
            body = decode_body(whole.msg_id, whole.body, whole.version)
        except FrameError as err:
            return BadFrame("bad_body", f"reassembled 0x{whole.msg_id:04X}: {err}", header)
        return Frame(header, body, whole.fragments)
