"""`detector status`: each rule's lease holder and expiry, last execution and checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from detector.es.client import Elastic
from detector.execution_log.lease_store import LeaseStore
from detector.execution_log.store import ExecutionStore
from detector.rules import Rule
from detector.times import iso

COLUMNS = (
    "rule",
    "holder",
    "lease until",
    "last execution",
    "status",
    "by",
    "checkpoint",
    "baseline",
)


@dataclass(frozen=True)
class RuleStatus:
    """What `detector status` says about one rule (times ISO-8601, None when unknown)."""

    rule_id: str
    rule_name: str
    holder: str | None
    lease_expires: str | None
    lease_live: bool
    last_scheduled: str | None
    last_status: str | None
    last_replica: str | None
    checkpoint: str | None
    # From the last successful scheduled execution (`detector.query.baseline`): the part of the
    # history its data covered, and since when the data reaches.
    baseline_coverage: float | None = None
    baseline_since: str | None = None
    # The clusters the last execution failed on (`(local)`, remote aliases).
    unavailable_clusters: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON object of `--json`."""
        return asdict(self)

    def row(self) -> tuple[str, ...]:
        """The table row."""
        holder = self.holder if self.lease_live else f"({self.holder}, expired)"
        if self.holder is None:  # never leased: `once` or the demo ran it, or nothing yet
            holder = "no lease yet"
        cells = (
            self.rule_id,
            holder,
            self.lease_expires,
            self.last_scheduled,
            self._status(),
            self.last_replica,
            self.checkpoint,
            self._baseline(),
        )
        return tuple(cell or "-" for cell in cells)

    def _status(self) -> str | None:
        if not self.unavailable_clusters:
            return self.last_status
        return f"{self.last_status} ({', '.join(self.unavailable_clusters)} unavailable)"

    def _baseline(self) -> str | None:
        if self.baseline_coverage is None:
            return None
        if self.baseline_coverage >= 1:
            return "mature"
        if self.baseline_since is None:
            return f"{self.baseline_coverage:.0%}, no data"
        return f"{self.baseline_coverage:.0%} since {self.baseline_since}"


def rule_statuses(
    elastic: Elastic, index: str, rules: Sequence[Rule], now: datetime
) -> list[RuleStatus]:
    """The status of each rule, read from the execution-log index."""
    held = LeaseStore(elastic, index).read([rule.rule_id for rule in rules])
    log = ExecutionStore(elastic, index)
    statuses = []
    for rule in rules:
        runs = log.last_runs(rule)
        lease, last = held[rule.rule_id], runs.last or {}
        execution = last.get("execution", {})
        baseline = (runs.last_success or {}).get("baseline") or {}
        checkpoint = log.checkpoint(rule.rule_id)
        statuses.append(
            RuleStatus(
                rule.rule_id,
                rule.name,
                lease.holder,
                iso(lease.expires) if lease.expires else None,
                not lease.free(now),
                execution.get("scheduled"),
                execution.get("status"),
                (last.get("replica") or {}).get("id"),
                iso(checkpoint) if checkpoint else None,
                baseline.get("coverage"),
                baseline.get("since"),
                tuple(execution.get("unavailable_clusters") or ()),
            )
        )
    return statuses


def table(statuses: Sequence[RuleStatus]) -> str:
    """An aligned text table, one row per rule."""
    rows = [COLUMNS, *(status.row() for status in statuses)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)
