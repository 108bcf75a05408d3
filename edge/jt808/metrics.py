"""The gateway's counters, and their Prometheus text form (`metrics_text`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Metrics:
    """Counters by name and label (`reason`, `msg`): bad frames, refusals, closes, reports."""

    connections_open: int = 0
    connections_total: int = 0
    authenticated: int = 0
    reports_stored: int = 0
    reports_duplicate: int = 0
    reports_refused: int = 0
    frames: Counter[str] = field(default_factory=Counter)
    bad_frames: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    closed: Counter[str] = field(default_factory=Counter)
    #: the server's `declared` lists refused, by reason (`edge.jt808.declared`)
    declared_refused: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One log line."""
        return (
            f"{self.connections_open} connections ({self.authenticated} authenticated, "
            f"{self.connections_total} since start), reports stored {self.reports_stored}, "
            f"duplicate {self.reports_duplicate}, refused {self.reports_refused}; "
            f"bad frames {dict(self.bad_frames)}; refused {dict(self.refused)}; "
            f"closed {dict(self.closed)}"
        )


def metrics_text(metrics: Metrics, extra: dict[str, float]) -> str:
    """Prometheus exposition text of `metrics` and of the gauges in `extra`."""
    lines: list[str] = []

    def gauge(name: str, value: float, help_text: str, kind: str = "gauge") -> None:
        lines.append(f"# HELP bondwatch_jt808_{name} {help_text}")
        lines.append(f"# TYPE bondwatch_jt808_{name} {kind}")
        lines.append(f"bondwatch_jt808_{name} {value}")

    def labelled(name: str, label: str, values: Counter[str], help_text: str) -> None:
        lines.append(f"# HELP bondwatch_jt808_{name} {help_text}")
        lines.append(f"# TYPE bondwatch_jt808_{name} counter")
        for key, value in sorted(values.items()):
            lines.append(f'bondwatch_jt808_{name}{{{label}="{key}"}} {value}')

    gauge("connections", metrics.connections_open, "device connections open")
    gauge("authenticated", metrics.authenticated, "authenticated device connections")
    gauge("connections_total", metrics.connections_total, "connections accepted", "counter")
    gauge("reports_stored_total", metrics.reports_stored, "reports stored", "counter")
    gauge("reports_duplicate_total", metrics.reports_duplicate, "reports sent again", "counter")
    gauge("reports_refused_total", metrics.reports_refused, "reports not stored", "counter")
    labelled("frames_total", "msg", metrics.frames, "whole frames by message id")
    labelled("bad_frames_total", "reason", metrics.bad_frames, "frames not taken, by reason")
    labelled("refused_total", "reason", metrics.refused, "requests refused, by reason")
    labelled("closed_total", "reason", metrics.closed, "connections closed, by reason")
    labelled(
        "declared_refused_total",
        "reason",
        metrics.declared_refused,
        "declared lists from the server refused, by reason",
    )
    for name, value in extra.items():
        gauge(name, value, name.replace("_", " "))
    return "\n".join(lines) + "\n"
