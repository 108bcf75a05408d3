"""The gate reader's results mapped to the contract's passage readings (edge.gate.readings)."""

from contract.payloads import ContainerReading, PlateReading
from devices.ocr import ContainerResult, PassageReading, PlateResult
from edge.gate.readings import container_reading, passage_containers, passage_plate


def test_container_confidence_clamped_and_rounded_type_kept():
    result = ContainerResult("MSKU9070323", 1.23456, True, False, iso_type="45G1")
    reading = container_reading(result)
    assert reading == ContainerReading(
        number="MSKU9070323",
        confidence=1.0,
        check_digit_ok=True,
        needs_review=False,
        iso_type="45G1",
    )
    low = container_reading(ContainerResult("TEMU0524620", 0.123456, False, True))
    assert low.confidence == 0.123
    assert low.iso_type is None
    assert low.needs_review


def test_passage_readings_in_order_and_plate():
    passage = PassageReading(
        containers=[
            ContainerResult("MSKU9070323", 0.97, True, False),
            ContainerResult("TGHU8643952", 0.6, True, True),
        ],
        plate=PlateResult("粤B12345", -0.5, True),
        images=2,
    )
    assert [c.number for c in passage_containers(passage)] == ["MSKU9070323", "TGHU8643952"]
    assert passage_plate(passage) == PlateReading(
        text="粤B12345", confidence=0.0, needs_review=True
    )
    assert passage_plate(PassageReading()) is None
    assert passage_containers(PassageReading()) == []
