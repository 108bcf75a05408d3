from __future__ import annotations

import pytest
from pydantic import ValidationError

from devices.elock.driver import Jt808LockConfig


def test_defaults_and_descriptions() -> None:
    config = Jt808LockConfig.model_validate(
        {"type": "jt808", "port": "/dev/ttyS1", "lock_ids": ["L1"]}
    )
    assert (config.baudrate, config.ack_timeout_s, config.retries) == (9600, 2.0, 3)
    assert config.accept_bad_checksum is False
    assert all(field.description for field in Jt808LockConfig.model_fields.values())


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"type": "nmea"}, "type"),
        ({"lock_ids": []}, "lock_ids"),
        ({"lock_ids": ["bad id!"]}, "lock_ids"),
        ({"retries": -1}, "retries"),
        ({"phones": {"L1": "12ab"}}, "phones"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_config_names_the_field(patch: dict[str, object], where: str) -> None:
    data: dict[str, object] = {"type": "jt808", "port": "/dev/ttyS1", "lock_ids": ["L1"], **patch}
    with pytest.raises(ValidationError) as caught:
        Jt808LockConfig.model_validate(data)
    assert where in str(caught.value)
