"""`GET /api/v1/vehicles/positions`: a fix dated in the future is never a vehicle's last
fix, even one stored before the ingest refused such messages (`clock_ahead`)."""

from __future__ import annotations

from datetime import timedelta

from contract.ids import format_ts, utc_now
from contract.payloads import Position
from server.store.database import IncomingMessage


def stored(services, seq: int, ts, lat: float) -> None:
    fix = Position.model_validate(
        {"node_id": "TRK-F", "seq": seq, "ts": ts, "lat": lat, "lon": 113.4, "fix": "3d"}
    )
    services.store.store_messages(
        [IncomingMessage("position", fix, fix.to_json().decode(), utc_now(), "truck")]
    )


def test_a_fix_dated_in_the_future_never_stays_the_last_fix(api, services):
    now = utc_now()
    stored(services, 1, now - timedelta(minutes=2), 23.0)
    stored(services, 2, now + timedelta(days=365 * 70), 23.5)  # a device clock in 2099
    stored(services, 3, now - timedelta(seconds=30), 23.1)
    stored(services, 4, now + timedelta(seconds=60), 23.2)  # within the allowed skew
    [truck] = [
        p for p in api.get("/api/v1/vehicles/positions").json() if p["vehicle_id"] == "TRK-F"
    ]
    assert (truck["seq"], truck["lat"]) == (4, 23.2)
    assert truck["ts"] <= format_ts(now + timedelta(seconds=120))
