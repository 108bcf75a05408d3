"""Print the gpsd conformance table at the end of the session."""

from __future__ import annotations

from typing import Any

from devices.gnss.conformance import table


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.devices.gnss import test_conformance

    results = sorted(test_conformance.RESULTS, key=lambda r: r.log)
    if results:
        terminalreporter.write_sep("-", "GNSS conformance with gpsd")
        terminalreporter.write_line(table(results))
