from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices.elock.authorisation import TOKEN_BYTES, check_unseal_token, make_unseal_token

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SECRET = b"per-lock-secret"


def test_good_token_checks_offline() -> None:
    token = make_unseal_token(SECRET, "L1", "TRIP-7", NOW + timedelta(minutes=10))
    assert len(token) == TOKEN_BYTES
    assert check_unseal_token(SECRET, "L1", "TRIP-7", token, NOW) == "ok"


@pytest.mark.parametrize(
    ("secret", "lock_id", "trip_id"),
    [(b"other", "L1", "TRIP-7"), (SECRET, "L2", "TRIP-7"), (SECRET, "L1", "TRIP-8")],
)
def test_token_is_bound_to_secret_lock_and_trip(secret: bytes, lock_id: str, trip_id: str) -> None:
    token = make_unseal_token(SECRET, "L1", "TRIP-7", NOW + timedelta(minutes=10))
    assert check_unseal_token(secret, lock_id, trip_id, token, NOW) == "bad_token"


def test_expiry_is_covered_by_the_tag_and_enforced() -> None:
    token = make_unseal_token(SECRET, "L1", "T", NOW + timedelta(minutes=1))
    assert (
        check_unseal_token(SECRET, "L1", "T", token, NOW + timedelta(minutes=2)) == "token_expired"
    )
    stretched = (int.from_bytes(token[:4], "big") + 3600).to_bytes(4, "big") + token[4:]
    assert (
        check_unseal_token(SECRET, "L1", "T", stretched, NOW + timedelta(minutes=2)) == "bad_token"
    )
    assert check_unseal_token(SECRET, "L1", "T", token[:-1], NOW) == "bad_token"


def test_naive_expiry_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_unseal_token(SECRET, "L1", "T", datetime(2026, 1, 1))
