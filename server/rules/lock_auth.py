"""Lock report authentication: LOCK_REPORT_FORGED and LOCK_REPORT_GAP.

A BondWatch lock signs every report with a MAC keyed by its own secret, over its report
counter and the report's content (`devices.elock.report_mac`). The gateway holds no
secret: it can neither forge nor change a report, and what it can do — drop reports,
or send an old one again — shows in the counter.

- LOCK_REPORT_FORGED (critical): a report of a lock the server has a secret for whose
  MAC or counter is missing or wrong, or whose counter is not above the last one seen
  in the trip (a replay). The report's content is not believed: no other lock rule sees it.
- LOCK_REPORT_GAP (major): the counter jumped: reports the lock sent never arrived (a
  hidden `shell_tampered`, say — or a gateway that was off while the lock reported).
  `missing` says how many.
- A lock with no configured secret: its reports pass unchecked here (nothing to check
  them with); the gate decision holds a truck carrying it (`lock_unauthenticated`).
"""

from __future__ import annotations

from dataclasses import replace

from contract.payloads import LockReport
from devices.elock.report_mac import check_report_mac
from server.rules.alarms import Effect, LonLat, raise_
from server.rules.state import LockAuthState


def report_authentic(secret: bytes, report: LockReport) -> bool:
    """The report carries a counter and a MAC, and the MAC is the lock's over exactly
    this report (whole-second time, whole-percent battery, as the lock sends them)."""
    if report.mac is None or report.counter is None or report.ts.microsecond:
        return False
    battery = report.battery_pct
    if battery is not None and not float(battery).is_integer():
        return False
    return check_report_mac(
        secret,
        bytes.fromhex(report.mac),
        report.lock_id,
        report.counter,
        report.ts,
        report.state,
        report.event,
        None if battery is None else int(battery),
    )


def check_lock_auth(
    st: LockAuthState, report: LockReport, secret: bytes | None, pos: LonLat | None
) -> tuple[LockAuthState, list[Effect], bool]:
    """(new state, effects, whether the report may be believed)."""
    if secret is None:
        return st, [], True
    lock_id, ts = report.lock_id, report.ts
    last = st.counter(lock_id)
    why = ""
    if report.mac is None or report.counter is None:
        why = "unsigned"
    elif not report_authentic(secret, report):
        why = "bad_mac"
    elif last is not None and report.counter <= last:
        why = "replayed"
    if why:
        detail: dict[str, str | int] = {
            "lock_id": lock_id,
            "reason": why,
            "event": report.event,
            "state": report.state,
        }
        if report.counter is not None:
            detail["counter"] = report.counter
        if last is not None:
            detail["last_counter"] = last
        return st, [raise_("LOCK_REPORT_FORGED", ts, pos, **detail)], False
    assert report.counter is not None
    effects: list[Effect] = []
    if last is not None and report.counter > last + 1:
        effects.append(
            raise_(
                "LOCK_REPORT_GAP",
                ts,
                pos,
                lock_id=lock_id,
                missing=report.counter - last - 1,
                after_counter=last,
                counter=report.counter,
            )
        )
    return replace(st, counters=st.with_counter(lock_id, report.counter)), effects, True
