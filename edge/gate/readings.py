"""The gate reader's results as the contract's passage readings: the one place they meet.

`devices.ocr` knows nothing of the MQTT contract; its summaries carry the fields a
passage's readings have, and are validated into the contract's models here.
"""

from __future__ import annotations

from contract.payloads import ContainerReading, PlateReading
from devices.ocr import ContainerResult, PassageReading, PlateResult


def container_reading(result: ContainerResult) -> ContainerReading:
    """One container number as the contract reports it."""
    return ContainerReading.model_validate(result.summary())


def plate_reading(result: PlateResult) -> PlateReading:
    """A plate as the contract reports it."""
    return PlateReading.model_validate(result.summary())


def passage_containers(reading: PassageReading) -> list[ContainerReading]:
    """A passage's container numbers, best first."""
    return [container_reading(c) for c in reading.containers]


def passage_plate(reading: PassageReading) -> PlateReading | None:
    """A passage's plate, if one was read."""
    return plate_reading(reading.plate) if reading.plate is not None else None
