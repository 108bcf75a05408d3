"""The report endpoints over real trips, passages and alarms, on SQLite and PostgreSQL:
the numbers worked out by hand from `standard_scenario`, the CSV read back, roles, and
malformed parameters."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from contract.ids import format_ts, utc_now
from tests.server.reports.conftest import QUOTED_NAME, ReportWorld
from tests.server.reports.fleet import (
    HP_BY,
    NS_BY,
    WINDOW_FROM,
    WINDOW_TO,
    Fleet,
    standard_scenario,
)

WINDOW = {"from": WINDOW_FROM, "to": WINDOW_TO}
NS_NAME = "南沙港 → 白云机场综保区 Nansha Port to Baiyun Airport CBZ"
REPORTS = ("transit-times", "alarms-by-type", "alarms-by-route", "alarms-by-day", "gate-release")


def get(client: TestClient, name: str, **params: str) -> Any:
    res = client.get(f"/api/v1/reports/{name}", params=params)
    assert res.status_code == 200, res.text
    return res.json()


def read_csv(client: TestClient, path: str, **params: str) -> list[list[str]]:
    res = client.get(f"/api/v1/reports/{path}", params=params)
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "text/csv; charset=utf-8"
    assert res.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    text = res.content.decode("utf-8")[1:]
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")  # CRLF only
    return list(csv.reader(io.StringIO(text, newline="")))


def sev(critical: int = 0, major: int = 0, minor: int = 0, warning: int = 0) -> dict[str, int]:
    return {"critical": critical, "major": major, "minor": minor, "warning": warning}


def test_transit_times_alarms_and_gate_release_from_real_traffic(world: ReportWorld) -> None:
    standard_scenario(world.fleet)
    api = world.client("supervisor")

    transit = get(api, "transit-times", **WINDOW)
    assert transit["window"] == {
        "from": "2026-10-31T16:00:00.000Z",
        "to": "2026-11-15T16:00:00.000Z",
        "tz": "Asia/Shanghai",
    }
    # 50, 70, 95 and 130 min: round buckets of 10 min from 50 to 140 (at most 12 buckets).
    assert (transit["trips"], transit["bucket_min"]) == (4, 10.0)
    hp, ns = transit["routes"]
    assert (hp["route_id"], hp["route_name"], hp["trips"]) == (HP_BY, QUOTED_NAME, 3)
    # p90 of 50, 70, 95 between closest ranks: 70 + 0.8 × 25 = 90; mean 215/3.
    assert hp["duration_min"] == {"min": 50.0, "p50": 70.0, "p90": 90.0, "max": 95.0, "mean": 71.7}
    assert [(b["from_min"], b["to_min"]) for b in hp["histogram"]] == [
        (float(x), float(x + 10)) for x in range(50, 140, 10)
    ]
    assert [b["count"] for b in hp["histogram"]] == [1, 0, 1, 0, 1, 0, 0, 0, 0]
    assert (ns["route_id"], ns["route_name"], ns["trips"]) == (NS_BY, NS_NAME, 1)
    assert ns["duration_min"] == {"min": 130.0, "p50": 130.0, "p90": 130.0, "max": 130.0,
                                  "mean": 130.0}  # fmt: skip
    assert [b["count"] for b in ns["histogram"]] == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    wide = get(api, "transit-times", bucket_min="30", **WINDOW)
    assert [[b["count"] for b in r["histogram"]] for r in wide["routes"]] == [
        [1, 1, 1, 0],  # [30, 60) [60, 90) [90, 120) [120, 150)
        [0, 0, 0, 1],
    ]

    by_type = get(api, "alarms-by-type", **WINDOW)
    assert by_type["total"] == {
        "alarms": 7, "occurrences": 9, "by_severity": sev(critical=2, major=2, minor=2, warning=1)
    }  # fmt: skip
    assert [(t["type"], t["alarms"], t["occurrences"]) for t in by_type["types"]] == [
        ("LOCK_TAMPER", 2, 2),
        ("GATE_MISMATCH", 1, 1),
        ("LOCK_LOW_BATTERY", 1, 1),
        ("OVERSPEED", 1, 1),
        ("ROUTE_DEVIATION", 1, 3),  # one alarm, repeated three times
        ("UNPLANNED_STOP", 1, 1),
    ]
    assert by_type["types"][0]["by_severity"] == sev(critical=2)

    by_route = get(api, "alarms-by-route", **WINDOW)
    assert [
        (r["route_id"], r["route_name"], r["alarms"], r["occurrences"]) for r in by_route["routes"]
    ] == [(HP_BY, QUOTED_NAME, 5, 7), (NS_BY, NS_NAME, 1, 1), (None, None, 1, 1)]
    assert by_route["routes"][0]["by_severity"] == sev(critical=2, major=1, minor=1, warning=1)

    by_day = get(api, "alarms-by-day", **WINDOW)
    days = {d["day"]: d["alarms"] for d in by_day["days"]}
    assert list(days) == [f"2026-11-{d:02d}" for d in range(1, 16)]
    assert {d: n for d, n in days.items() if n} == {
        "2026-11-01": 1, "2026-11-05": 1, "2026-11-06": 1, "2026-11-08": 1,
        "2026-11-11": 1, "2026-11-12": 2,
    }  # fmt: skip
    eleventh = next(d for d in by_day["days"] if d["day"] == "2026-11-11")
    assert (eleventh["occurrences"], eleventh["by_severity"]) == (3, sev(major=1))
    # The same window counted in UTC days: 01:00 on the 11th in Shanghai is the 10th in UTC.
    utc = get(api, "alarms-by-day", tz="UTC", **WINDOW)
    assert utc["window"]["tz"] == "UTC"
    utc_days = {d["day"]: d["alarms"] for d in utc["days"] if d["alarms"]}
    assert utc_days == {
        "2026-10-31": 1, "2026-11-05": 1, "2026-11-06": 1, "2026-11-08": 1,
        "2026-11-10": 1, "2026-11-12": 2,
    }  # fmt: skip
    assert len(utc["days"]) == 16  # 31 Oct … 15 Nov (UTC)
    one_day = {"from": "2026-11-12T00:00:00+08:00", "to": "2026-11-13T00:00:00+08:00"}
    days = get(api, "alarms-by-day", **one_day)["days"]
    assert [(d["day"], d["alarms"], d["by_severity"]) for d in days] == [
        ("2026-11-12", 2, sev(critical=1, minor=1))
    ]
    partial = {"from": "2026-11-11T01:30:00+08:00", "to": "2026-11-12T10:45:00+08:00"}
    days = get(api, "alarms-by-day", **partial)["days"]  # the deviation began at 01:00
    assert [(d["day"], d["alarms"]) for d in days] == [("2026-11-11", 0), ("2026-11-12", 1)]

    release = get(api, "gate-release", **WINDOW)
    gates = {
        g["gate_id"]: (g["passages"], g["auto_open"], g["held"], g["overridden_open"],
                       g["overridden_hold"], g["auto_release_rate"])
        for g in release["gates"]
    }  # fmt: skip
    assert gates == {
        "G-BAIYUN-1": (4, 3, 0, 1, 0, 0.75),  # trip 3 held, then opened by an officer
        "G-HUANGPU-1": (5, 4, 1, 0, 0, 0.8),  # the stranger held
        "G-NANSHA-2": (1, 1, 0, 0, 0, 1.0),
    }
    overall = release["overall"]
    assert (overall["gate_id"], overall["passages"], overall["auto_open"]) == ("*", 10, 8)
    assert (overall["held"], overall["overridden"], overall["auto_release_rate"]) == (1, 1, 0.8)
    assert release["gates"][0]["gate_name"] == "白云综保区 1号卡口 Baiyun CBZ gate 1"

    # October alone: trip 6 (60 min), its route deviation, its two passages.
    october = {"from": "2026-10-01T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00"}
    transit = get(api, "transit-times", **october)
    assert [(r["route_id"], r["trips"]) for r in transit["routes"]] == [(HP_BY, 1), (NS_BY, 0)]
    assert transit["routes"][0]["duration_min"]["p50"] == 60.0
    assert transit["routes"][1]["duration_min"] is None
    assert get(api, "alarms-by-type", **october)["total"]["alarms"] == 1
    assert get(api, "gate-release", **october)["overall"]["passages"] == 2


def test_csv_of_each_report_reads_back(world: ReportWorld) -> None:
    standard_scenario(world.fleet)
    api = world.client("supervisor")

    rows = read_csv(api, "transit-times.csv", bucket_min="30", **WINDOW)
    assert rows[0] == [
        "route_id", "route_name", "trips", "min_minutes", "p50_minutes", "p90_minutes",
        "max_minutes", "mean_minutes", "30-60 min", "60-90 min", "90-120 min", "120-150 min",
    ]  # fmt: skip
    assert rows[1] == [HP_BY, QUOTED_NAME, "3", "50.0", "70.0", "90.0", "95.0", "71.7",
                       "1", "1", "1", "0"]  # fmt: skip
    assert rows[2] == [NS_BY, NS_NAME, "1", "130.0", "130.0", "130.0", "130.0", "130.0",
                       "0", "0", "0", "1"]  # fmt: skip
    assert len(rows) == 3
    raw = api.get("/api/v1/reports/transit-times.csv", params=WINDOW).content.decode("utf-8")
    assert '"黄埔新港 → 白云, ""综保区"""' in raw  # RFC 4180 quoting of , and "

    rows = read_csv(api, "alarms-by-type.csv", **WINDOW)
    assert rows[0] == ["type", "alarms", "occurrences", "critical", "major", "minor", "warning"]
    assert rows[1] == ["LOCK_TAMPER", "2", "2", "2", "0", "0", "0"]
    assert ["ROUTE_DEVIATION", "1", "3", "0", "1", "0", "0"] in rows
    assert rows[-1] == ["*", "7", "9", "2", "2", "2", "1"]

    rows = read_csv(api, "alarms-by-route.csv", **WINDOW)
    # ?format=csv on the JSON path is the same file.
    same = api.get("/api/v1/reports/alarms-by-route", params={"format": "csv", **WINDOW})
    assert same.content == api.get("/api/v1/reports/alarms-by-route.csv", params=WINDOW).content
    assert rows[1:] == [
        [HP_BY, QUOTED_NAME, "5", "7", "2", "1", "1", "1"],
        [NS_BY, NS_NAME, "1", "1", "0", "0", "1", "0"],
        ["", "", "1", "1", "0", "1", "0", "0"],
        ["*", "", "7", "9", "2", "2", "2", "1"],
    ]

    rows = read_csv(api, "alarms-by-day.csv", **WINDOW)
    assert rows[0] == ["day", "alarms", "occurrences", "critical", "major", "minor", "warning"]
    assert [r[0] for r in rows[1:-1]] == [f"2026-11-{d:02d}" for d in range(1, 16)]
    assert rows[11] == ["2026-11-11", "1", "3", "0", "1", "0", "0"]
    assert rows[-1] == ["*", "7", "9", "2", "2", "2", "1"]

    res = api.get("/api/v1/reports/gate-release.csv", params=WINDOW)
    assert res.headers["content-disposition"] == (
        'attachment; filename="bondwatch-gate-release-20261031T160000Z-20261115T160000Z.csv"'
    )
    rows = read_csv(api, "gate-release.csv", **WINDOW)
    assert rows == [
        ["gate_id", "gate_name", "passages", "auto_open", "held", "overridden_open",
         "overridden_hold", "auto_release_rate", "corrected", "corrected_open",
         "appointment_open"],
        ["G-BAIYUN-1", "白云综保区 1号卡口 Baiyun CBZ gate 1", "4", "3", "0", "1", "0", "0.7500",
         "0", "0", "0"],
        ["G-HUANGPU-1", "黄埔新港 3号卡口 Huangpu gate 3", "5", "4", "1", "0", "0", "0.8000",
         "0", "0", "0"],
        ["G-NANSHA-2", "南沙港 2号卡口 Nansha gate 2", "1", "1", "0", "0", "0", "1.0000",
         "0", "0", "0"],
        ["*", "", "10", "8", "1", "1", "0", "0.8000", "0", "0", "0"],
    ]  # fmt: skip


def test_default_window_is_the_last_30_days_in_shanghai(world: ReportWorld) -> None:
    fleet: Fleet = world.fleet
    now = utc_now()
    recent = fleet.declare(1, HP_BY, "G-HUANGPU-1")
    old = fleet.declare(2, HP_BY, "G-HUANGPU-1")
    for ref, departed in ((recent, now - timedelta(days=2)), (old, now - timedelta(days=40))):
        fleet.depart(ref, departed)
        fleet.arrive(ref, departed + timedelta(minutes=42))
    api = world.client("admin")  # admins read reports too
    transit = get(api, "transit-times")
    assert transit["window"]["to"] <= format_ts(utc_now())
    assert transit["window"]["to"] >= format_ts(now - timedelta(seconds=1))
    assert transit["trips"] == 1 and transit["routes"][0]["duration_min"]["max"] == 42.0
    days = get(api, "alarms-by-day")["days"]
    assert len(days) == 30
    today = now.astimezone(ZoneInfo("Asia/Shanghai")).date()
    assert (days[0]["day"], days[-1]["day"]) == (
        (today - timedelta(days=29)).isoformat(),
        today.isoformat(),
    )
    assert get(api, "gate-release")["overall"]["passages"] == 2  # the recent trip's two


def test_only_supervisors_and_admins_read_reports(world: ReportWorld) -> None:
    supervisor, admin, officer = (world.client(r) for r in ("supervisor", "admin", "officer"))
    anonymous = world.client(None)
    bearer = {"Authorization": f"Bearer {world.integration_token()}"}  # the declaration system
    for name in REPORTS:
        assert supervisor.get(f"/api/v1/reports/{name}").status_code == 200
        assert admin.get(f"/api/v1/reports/{name}.csv").status_code == 200
        for path in (name, f"{name}.csv"):
            res = officer.get(f"/api/v1/reports/{path}", params={"from": "not a time"})
            assert res.status_code == 403, res.text  # refused before the parameters are read
            error = res.json()["error"]
            assert error["code"] == "forbidden" and "supervisor or admin" in error["message"]
            res = anonymous.get(f"/api/v1/reports/{path}", headers=bearer)
            assert res.status_code == 403 and res.json()["error"]["code"] == "forbidden"
            res = anonymous.get(f"/api/v1/reports/{path}")
            assert res.status_code == 401 and res.json()["error"]["code"] == "unauthenticated"


BAD = [
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-11-01"}, "from"),  # a date is not a time
    ({"from": "2026-11-01T00:00:00"}, "from"),  # no offset
    ({"to": "2026-13-01T00:00:00Z"}, "to"),  # no 13th month
    ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
    ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),  # empty
    ({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),  # > 366 days
    ({"tz": "Mars/Olympus_Mons"}, "tz"),
    ({"tz": "../../etc/passwd"}, "tz"),
    ({"format": "xlsx"}, "format"),
]


def test_malformed_parameters_are_refused_with_400(world: ReportWorld) -> None:
    api = world.client("supervisor")
    for params, field in BAD:
        for name in ("alarms-by-day", "gate-release.csv"):
            res = api.get(f"/api/v1/reports/{name}", params=params)
            assert res.status_code == 400, (params, res.text)
            assert res.headers["content-type"] == "application/json"
            error = res.json()["error"]
            assert (error["code"], error["field"]) == ("invalid", field), (params, error)
            assert error["message"]
    for width in ("0", "-5", "1441", "ten", "2.5"):
        res = api.get("/api/v1/reports/transit-times", params={"bucket_min": width})
        assert res.status_code == 400, (width, res.text)
        assert res.json()["error"]["field"] == "bucket_min"


def test_too_many_buckets_is_refused(world: ReportWorld) -> None:
    fleet = world.fleet
    now = utc_now()
    for n, minutes in ((1, 30), (2, 900)):
        ref = fleet.declare(n, HP_BY, "G-HUANGPU-1", time_limit_min=1000)
        fleet.depart(ref, now - timedelta(days=1, minutes=minutes))
        fleet.arrive(ref, now - timedelta(days=1))
    api = world.client("supervisor")
    res = api.get("/api/v1/reports/transit-times", params={"bucket_min": "1"})
    assert res.status_code == 400, res.text
    assert "871 buckets" in res.json()["error"]["message"]  # 30 … 900 min, one per minute
    assert get(api, "transit-times", bucket_min="5")["bucket_min"] == 5.0
    assert get(api, "transit-times")["bucket_min"] == 90.0  # round: 11 buckets of 90 min


def test_reports_are_in_the_openapi_document(world: ReportWorld) -> None:
    assert world.client(None).get("/openapi.json").status_code == 401  # signed-in only
    paths = world.client("officer").get("/openapi.json").json()["paths"]
    for name in REPORTS:
        assert f"/api/v1/reports/{name}" in paths and f"/api/v1/reports/{name}.csv" in paths
    params = {p["name"] for p in paths["/api/v1/reports/alarms-by-day"]["get"]["parameters"]}
    assert {"from", "to", "tz", "format"} <= params
