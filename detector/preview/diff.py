"""The would-be alerts a rule change adds and removes over one range (two previews). Pure.

An alert is identified by its new-terms fields, its term and its first-seen time, what the
engine's alert id hashes besides the rule id: the same term alerting from another first-seen
time (a shorter history, say) is one alert removed and one added.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.preview.report import Alert, Preview
from detector.times import iso

Key = tuple[tuple[str, ...], tuple[Any, ...], datetime]


def _key(alert: Alert) -> Key:
    return alert.fields, alert.values, alert.first_seen


@dataclass(frozen=True)
class Diff:
    """The alerts only the new rule writes (`added`), only the old one (`removed`), and how
    many both write."""

    old: Preview
    new: Preview
    added: tuple[Alert, ...]
    removed: tuple[Alert, ...]
    unchanged: int

    def lines(self) -> list[str]:
        """The readable diff: `+` added, `-` removed, a summary line."""
        lines = [
            f"rule {self.old.rule_id} -> {self.new.rule_id}: would-be alerts from "
            f"{iso(self.new.start)} to {iso(self.new.end)}"
        ]
        lines.extend("+" + alert.line()[1:] for alert in self.added)
        lines.extend("-" + alert.line()[1:] for alert in self.removed)
        lines.append(self.summary())
        return lines

    def summary(self) -> str:
        """One line: counts of each side."""
        return (
            f"diff: {len(self.added)} added, {len(self.removed)} removed, {self.unchanged} "
            f"unchanged ({len(self.old.alerts)} before, {len(self.new.alerts)} after)"
        )

    def to_json(self) -> list[dict[str, Any]]:
        """One object per added or removed alert, with `change`: `added` or `removed`."""
        return [{"change": "added", **alert.to_json()} for alert in self.added] + [
            {"change": "removed", **alert.to_json()} for alert in self.removed
        ]


def compare(old: Preview, new: Preview) -> Diff:
    """What changes from `old` to `new` (the same range), in execution order."""
    before = {_key(alert) for alert in old.alerts}
    after = {_key(alert) for alert in new.alerts}
    added = tuple(alert for alert in new.alerts if _key(alert) not in before)
    removed = tuple(alert for alert in old.alerts if _key(alert) not in after)
    return Diff(old, new, added, removed, len(before & after))
