"""What the gate reader reports: per image, per passage, and the contract payload shapes."""

from __future__ import annotations

from dataclasses import dataclass, field

from contract.payloads import ContainerReading, PlateReading

#: Readings below this confidence are reported with `needs_review`.
DEFAULT_REVIEW_THRESHOLD = 0.8


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

    def to_contract(self) -> ContainerReading:
        return ContainerReading(
            number=self.number,
            confidence=round(min(1.0, max(0.0, self.confidence)), 3),
            check_digit_ok=self.check_digit_ok,
            needs_review=self.needs_review,
            iso_type=self.iso_type,
        )


@dataclass(frozen=True)
class PlateResult:
    """A licence plate, validated against the Chinese plate formats."""

    text: str
    confidence: float
    needs_review: bool
    kind: str = ""
    agreement: int = 1

    def to_contract(self) -> PlateReading:
        return PlateReading(
            text=self.text,
            confidence=round(min(1.0, max(0.0, self.confidence)), 3),
            needs_review=self.needs_review,
        )


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

    def contract_containers(self) -> list[ContainerReading]:
        return [c.to_contract() for c in self.containers]

    def contract_plate(self) -> PlateReading | None:
        return self.plate.to_contract() if self.plate else None
