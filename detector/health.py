"""`detector health`: is every enabled rule running? Pure.

A rule is healthy when its last successful scheduled execution (`succeeded`, or `partial
failure`: it ran, with a warning) ended within the maximum age. Otherwise one line says why:
it never ran, its last execution failed (with the error and when), or its last success is too
old. Backfills and `once --at` (execution type `manual`) say nothing about the schedule and are
not looked at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from detector.errors import shorten
from detector.results import FAILED

Doc = Mapping[str, Any]


@dataclass(frozen=True)
class RuleRuns:
    """The newest scheduled execution of a rule, and its newest successful one."""

    rule_id: str
    rule_name: str
    last: Doc | None
    last_success: Doc | None


# Characters of an execution's error in a health line (the execution log has it whole).
HEALTH_ERROR = 200


def problem(runs: RuleRuns, current: datetime, max_age: timedelta) -> str | None:
    """Why the rule is unhealthy, or None when it is healthy."""
    head = f"rule {runs.rule_id} ({runs.rule_name})"
    success = _ended(runs.last_success) if runs.last_success is not None else None
    if success is not None and current - success <= max_age:
        return None
    if runs.last is None:
        return f"{head}: never ran"
    since = _since(success, current)
    execution = runs.last["execution"]
    if execution["status"] == FAILED:
        return (
            f"{head}: last execution failed at {execution['ended']}: "
            f"{shorten(str(execution.get('error')), HEALTH_ERROR)}"
            f" ({since})"
        )
    return f"{head}: {since} (more than the {max_age.total_seconds():.0f} s allowed)"


def problems(runs: Sequence[RuleRuns], current: datetime, max_age: timedelta) -> list[str]:
    """One line per unhealthy rule, in the given order."""
    found = (problem(rule, current, max_age) for rule in runs)
    return [line for line in found if line is not None]


def _since(success: datetime | None, current: datetime) -> str:
    if success is None:
        return "never succeeded"
    age = (current - success).total_seconds()
    return f"last success at {_text(success)}, {age:.0f} s ago"


def _ended(doc: Doc) -> datetime:
    return datetime.fromisoformat(str(doc["execution"]["ended"]).replace("Z", "+00:00"))


def _text(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def baseline_notes(runs: Sequence[RuleRuns]) -> list[str]:
    """One line per rule whose last successful execution had a baseline not covering its
    history yet (`detector.baseline`): not a health problem, but its alerts are less certain
    (`alert`) or held (`hold`)."""
    lines = []
    for rule in runs:
        baseline = (rule.last_success or {}).get("baseline") or {}
        if not baseline or baseline.get("mature"):
            continue
        effect = "new terms are held" if baseline.get("mode") == "hold" else "alerts carry it"
        lines.append(
            f"rule {rule.rule_id} ({rule.rule_name}): baseline covers "
            f"{float(baseline.get('coverage') or 0.0):.0%} of its history (data since "
            f"{baseline.get('since') or 'none'}); {effect}"
        )
    return lines
