"""A preview's would-be alerts and what each execution would do; as text and JSON. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from detector.preview.simulation import Tally
from detector.query.window import Window
from detector.results import Values
from detector.times import iso


@dataclass(frozen=True)
class Alert:
    """One would-be alert: the term, the execution that would write it (its `now` and window),
    when the term was first seen, its phase-3 details and the overflow it was carried over."""

    rule_id: str
    fields: tuple[str, ...]
    values: Values
    first_seen: datetime
    execution: datetime
    window: Window
    event_count: int = 0
    actions: tuple[str, ...] = ()
    document: tuple[str, str] | None = None  # (index, id) of the first document
    overflow_carried: int = 0
    baseline_coverage: float = 1.0

    @property
    def key(self) -> tuple[Values, datetime]:
        """What identifies the alert across previews: its term and first-seen time (the
        engine's alert id hashes exactly these, with the rule)."""
        return self.values, self.first_seen

    def to_json(self) -> dict[str, Any]:
        """One JSON object; `new_terms` is the alert's `kibana.alert.new_terms`."""
        return {
            "rule_id": self.rule_id,
            "new_terms": list(self.values),
            "new_terms_fields": list(self.fields),
            "first_seen": iso(self.first_seen),
            "execution": iso(self.execution),
            "window": {"start": iso(self.window.start), "end": iso(self.window.end)},
            "event_count": self.event_count,
            "actions": list(self.actions),
            "document": (
                {"index": self.document[0], "id": self.document[1]} if self.document else None
            ),
            "overflow_carried": self.overflow_carried,
            "baseline_coverage": self.baseline_coverage,
        }

    def line(self) -> str:
        """The alert as one readable line."""
        terms = ", ".join(
            f"{name}={value}" for name, value in zip(self.fields, self.values, strict=True)
        )
        actions = ",".join(self.actions) or "-"
        carried = f", carried over {self.overflow_carried}x" if self.overflow_carried else ""
        where = f" {self.document[0]}/{self.document[1]}" if self.document else ""
        return (
            f"  {iso(self.execution)}  {terms}  first seen {iso(self.first_seen)}, "
            f"{self.event_count} event(s), actions {actions}{carried}{where}"
        )


@dataclass(frozen=True)
class Executed:
    """What one execution of the range would do."""

    now: datetime
    tally: Tally


@dataclass
class Preview:
    """What a rule would have alerted over `[start, end]`."""

    rule_id: str
    rule_name: str
    start: datetime
    end: datetime
    alerts: list[Alert] = field(default_factory=list)
    executions: list[Executed] = field(default_factory=list)

    def days(self) -> list[tuple[date, dict[str, int]]]:
        """Per UTC day of the executions: executions, alerts, terms left over, terms held."""
        found: dict[date, dict[str, int]] = {}
        for done in self.executions:
            day = found.setdefault(
                done.now.date(), {"executions": 0, "alerts": 0, "overflow": 0, "held": 0}
            )
            day["executions"] += 1
            day["alerts"] += done.tally.alerts
            day["overflow"] += done.tally.overflow
            day["held"] += done.tally.held
        return sorted(found.items())

    def lines(self) -> list[str]:
        """The readable report: the alerts, a line per day, a summary line."""
        lines = [
            f"rule {self.rule_id} ({self.rule_name}): would-be alerts "
            f"from {iso(self.start)} to {iso(self.end)}"
        ]
        lines.extend(alert.line() for alert in self.alerts)
        for day, counts in self.days():
            lines.append(
                f"  {day.isoformat()}: {counts['executions']} execution(s), "
                f"{counts['alerts']} alert(s), {counts['overflow']} left over beyond max_signals, "
                f"{counts['held']} held (baseline)"
            )
        lines.append(summary(self.executions, len(self.alerts)))
        return lines


def summary(executions: Sequence[Executed], alerts: int) -> str:
    """The last line: executions, alerts, and that nothing was written."""
    overflowing = sum(1 for done in executions if done.tally.overflow)
    return (
        f"preview: {len(executions)} execution(s), {alerts} would-be alert(s), "
        f"{overflowing} execution(s) over max_signals; nothing written"
    )
