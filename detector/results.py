"""The values one execution produces and passes between the phases and layers. Pure.

`NewTerm` and `ExecutionContext` are what an alert is built from (`detector.alerts.document`);
`ExecutionResult` is what one execution did, which the runner logs, records in the execution log
(`detector.execution_log.documents`), counts in the metrics and hands to the alert sinks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from detector.times import iso

# The values of one term, in the rule's `new_terms_fields` order, JSON types kept.
Values = tuple[Any, ...]

# An execution's status, in Kibana's rule-monitoring words, everywhere (CLI, JSON, execution
# log, metrics): `partial failure` is a success with a warning (terms left over beyond
# `max_signals`, or a gap reported before it).
SUCCEEDED = "succeeded"
PARTIAL_FAILURE = "partial failure"
FAILED = "failed"
STATUSES = (SUCCEEDED, PARTIAL_FAILURE, FAILED)


@dataclass(frozen=True)
class NewTerm:
    """One term (a values-tuple of the rule's new_terms_fields) first seen in the window."""

    values: tuple[Any, ...]  # in rule.new_terms_fields order, JSON types kept
    first_seen: datetime  # min combined timestamp (override, else @timestamp) in the window; UTC
    hit: Mapping[str, Any]  # the oldest matching doc in the window: {"_index", "_id", "_source"}
    event_count: int = 1  # matching events with this term in the window
    actions: tuple[str, ...] = ()  # distinct event.action values of those events, sorted


@dataclass(frozen=True)
class ExecutionRef:
    """Which execution: its type and id (the execution-log document's id and its alerts'
    `kibana.alert.rule.execution.uuid`)."""

    type: str  # "scheduled", or "manual" (backfill / --at)
    id: str

    @classmethod
    def new(cls, execution_type: str) -> ExecutionRef:
        """A new execution of this type, with a fresh id."""
        return cls(execution_type, str(uuid.uuid4()))


@dataclass(frozen=True)
class ExecutionContext:
    """What one rule execution knows about itself."""

    execution_uuid: str
    started_at: datetime  # wall clock at execution start -> alert @timestamp
    now: datetime  # the execution's `now` (scheduled time or --at)
    window_start: datetime
    window_end: datetime
    history_start: datetime
    execution_type: str = "scheduled"  # or "manual" (backfill / --at)
    # How much of the history the rule's data covers (`detector.query.baseline`), marked on alerts.
    baseline_coverage: float | None = None
    baseline_since: datetime | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """What one execution did; `to_json()` is also the structured log line."""

    rule_id: str
    rule_name: str
    now: datetime
    status: str  # one of STATUSES
    window_start: datetime | None = None
    window_end: datetime | None = None
    history_start: datetime | None = None
    error: str | None = None
    # The failure may pass if tried again soon (unreachable, 429, bulk items refused or left
    # unanswered): the runner retries it within the interval, not at the next slot only.
    transient: bool = False
    # The clusters (`(local)`, remote aliases) that did not answer in full: why it failed.
    unavailable_clusters: tuple[str, ...] = ()
    terms_checked: int = 0
    new_terms: int = 0
    already_alerted: int = 0
    alerts_written: int = 0
    alerts: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    # Ids of the alerts this execution created (not those that already existed): what sinks get.
    created_ids: tuple[str, ...] = ()
    overflow: int = 0
    overflow_terms: tuple[Values, ...] = ()
    dry_run: bool = False
    # The rule's index patterns matched no index (phase 1 searched no shard): Kibana's
    # "no index matching" warning; the execution is a `partial failure`.
    no_index_matched: bool = False
    # Documents of the rule whose time field (the override) is later than the window's end by
    # more than `phases.FUTURE_TOLERANCE`: they alert late, once the clock reaches them.
    future_documents: int = 0
    duration_ms: int = 0
    search_ms: int = 0
    index_ms: int = 0
    requests: int = 0
    # The execution id: the execution-log document's id and its alerts'
    # `kibana.alert.rule.execution.uuid`, so an analyst goes from one to the other.
    execution_id: str | None = None
    # Window documents that match but produce no term (`detector.query.skipped`), and one of them.
    skipped_documents: int = 0
    skipped_example: str | None = None  # "index/id"
    # The baseline (`detector.query.baseline.Baseline.to_json()`), and the terms held by `hold`.
    baseline: dict[str, Any] | None = None
    held: int = 0
    held_terms: tuple[Values, ...] = ()

    @property
    def succeeded(self) -> bool:
        """Whether the execution succeeded (`partial failure` included)."""
        return self.status != FAILED

    def created_alerts(self) -> list[dict[str, Any]]:
        """The documents of the alerts this execution created, in the order they were built."""
        created = set(self.created_ids)
        return [alert for alert in self.alerts if alert["kibana"]["alert"]["uuid"] in created]

    def summary(self) -> str:
        """A short human-readable line."""
        head = f"{self.rule_id} ({self.rule_name}) at {iso(self.now)}"
        if not self.succeeded:
            return f"{head}: FAILED: {self.error}"
        verb = "would write" if self.dry_run else "wrote"
        count = len(self.alerts) if self.dry_run else self.alerts_written
        status = f"{PARTIAL_FAILURE}: " if self.status == PARTIAL_FAILURE else ""
        text = (
            f"{head}: {status}{self.terms_checked} term(s) in the window, {self.new_terms} new, "
            f"{verb} {count} alert(s)"
        )
        if self.already_alerted:
            text += f", {self.already_alerted} already alerted"
        if self.overflow:
            text += f", {self.overflow} left over for the next run (max_signals)"
        if self.no_index_matched:
            text += ", no index matched its index patterns"
        if self.future_documents:
            text += f", {self.future_documents} document(s) timestamped in the future"
        text += self.trust_text()
        return f"{text} [{self.requests} request(s), {self.duration_ms} ms]"

    def trust_text(self) -> str:
        """What a readable line adds: held terms, skipped documents (with an example), and a
        baseline that does not cover the history yet."""
        text = ""
        if self.held:
            text += f", {self.held} held (baseline not mature)"
        if self.skipped_documents:
            text += (
                f", {self.skipped_documents} document(s) skipped without the new-terms "
                f"field(s) (e.g. {self.skipped_example})"
            )
        if self.baseline is not None and not self.baseline.get("mature"):
            coverage = float(self.baseline.get("coverage") or 0.0)
            since = self.baseline.get("since") or "none"
            text += f", baseline covers {coverage:.0%} of the history (data since {since})"
        return text

    def to_json(self, *, with_alerts: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO-8601); alert documents only if asked."""
        # Shallow, field by field: `asdict` deep-copies every alert document only to drop them
        # (a sixth of an execution's time at 100 alerts).
        data = {
            item.name: getattr(self, item.name) for item in fields(self) if item.name != "alerts"
        }
        data["created_ids"] = list(self.created_ids)
        data["unavailable_clusters"] = list(self.unavailable_clusters)
        for key in ("now", "window_start", "window_end", "history_start"):
            value = data[key]
            data[key] = iso(value) if value is not None else None
        data["overflow_terms"] = [list(values) for values in self.overflow_terms]
        data["held_terms"] = [list(values) for values in self.held_terms]
        if with_alerts:
            data["alerts"] = list(self.alerts)
        return data
