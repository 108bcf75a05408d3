"""What the gate reader reports: per image, per passage, and each reading's summary.

The summaries hold what the reader vouches for (the fields of a passage's readings in
the MQTT contract); the gate agent maps them to the contract (`edge.gate.readings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Readings below this confidence are reported with `needs_review`.
DEFAULT_REVIEW_THRESHOLD = 0.8

#: Where a reading was found: x0, y0, x1, y1 in the read image's pixels.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ContainerResult:
    """One container number found in an image (or fused over a passage).

    `confidence` is calibrated as the probability that `number` is exactly right
    (see docs/gate-vision.md); `how` says how it was assembled, `alternatives`
    lists other valid numbers that fit the same glyphs (an ambiguous reading).
    """

    number: str
    confidence: float
    check_digit_ok: bool
    needs_review: bool
    iso_type: str | None = None
    how: str = ""
    char_height: float = 0.0
    alternatives: tuple[str, ...] = ()
    agreement: int = 1
    #: Sent to review whatever the threshold: no check digit seen, a repaired digit,
    #: a rare category letter, a number cut from a longer line.
    doubtful: bool = False
    #: Where in the image it was read (None: not known, e.g. fused over a passage).
    box: Box | None = None

    def summary(self) -> dict[str, object]:
        """Number, reported confidence, check digit, review flag and ISO type (when read)."""
        out: dict[str, object] = {
            "number": self.number,
            "confidence": reported_confidence(self.confidence),
            "check_digit_ok": self.check_digit_ok,
            "needs_review": self.needs_review,
        }
        if self.iso_type is not None:
            out["iso_type"] = self.iso_type
        return out


@dataclass(frozen=True)
class PlateResult:
    """A licence plate, validated against the Chinese plate formats."""

    text: str
    confidence: float
    needs_review: bool
    kind: str = ""
    agreement: int = 1
    #: Sent to review whatever the threshold: the text does not fit the plate's colour
    #: (e.g. seven characters on a green new-energy plate, which has eight).
    doubtful: bool = False
    #: Where in the image it was read (None: the whole image, or fused over a passage).
    box: Box | None = None

    def summary(self) -> dict[str, object]:
        """Text, reported confidence and review flag."""
        return {
            "text": self.text,
            "confidence": reported_confidence(self.confidence),
            "needs_review": self.needs_review,
        }


@dataclass(frozen=True)
class ImageReading:
    """Everything read in one image: containers best first, the plate if any."""

    containers: list[ContainerResult] = field(default_factory=list)
    plate: PlateResult | None = None
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class PassageReading:
    """One passage fused from several frames or cameras."""

    containers: list[ContainerResult] = field(default_factory=list)
    plate: PlateResult | None = None
    images: int = 0


def reported_confidence(confidence: float) -> float:
    """A confidence as reported outside the reader: within [0, 1], three decimals."""
    return round(min(1.0, max(0.0, confidence)), 3)
