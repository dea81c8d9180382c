"""Documents of the execution log: one per execution, and one checkpoint per rule. Pure.

An execution's status follows Kibana's rule monitoring (§5 of the Kibana notes): `failed` when
the execution failed, `partial failure` when it succeeded with a warning (terms left over beyond
`max_signals`, a gap reported before it, or no index matching the rule's patterns, as Kibana
warns), `succeeded` otherwise. Documents later than the window (a clock ahead) are a warning of
a `succeeded` execution: the window itself was searched whole. Times are ISO-8601 UTC with
milliseconds; durations are milliseconds, the gap in seconds.

Execution types are Kibana's: `scheduled` (the schedule and its catch-up executions) and
`manual` (`once --at` and backfills).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.results import FAILED, PARTIAL_FAILURE, SUCCEEDED, ExecutionRef, ExecutionResult
from detector.schedule.catchup import Gap
from detector.times import iso

SCHEDULED = "scheduled"
MANUAL = "manual"

EXECUTION = "execution"
# Kibana's warning when none of a rule's index patterns matches an index.
NO_INDEX_MATCHED = (
    "no index matched the rule's index patterns: nothing was searched "
    "(a typo in an index name, or no data yet)"
)
CHECKPOINT = "checkpoint"
# The status of an execution's document while it runs (`detector.execution_log.records`): one still
# `running` after its process died is reconciled by the next execution of the rule.
RUNNING = "running"
# Where `metrics.alerts_written` comes from: the execution itself, or (for an execution whose
# process was killed, or that failed after writing some alerts) a count of its execution id in
# the alerts index.
COUNTED_BY_EXECUTION = "execution"
COUNTED_IN_ALERTS_INDEX = "alerts index"
INTERRUPTED = (
    "interrupted: the execution never finished (its process was killed or lost); "
    "alerts_written is the count of its execution id in the alerts index"
)


@dataclass(frozen=True)
class Timing:
    """When an execution ran, by the wall clock."""

    started: datetime
    ended: datetime


@dataclass(frozen=True)
class Replica:
    """Which replica ran an execution, and whether its checkpoint move was refused because
    another replica had taken the rule's lease over (a *fenced* attempt)."""

    id: str | None = None
    fenced: bool = False


def status_of(result: ExecutionResult, gap: Gap | None = None) -> str:
    """`failed`, `partial failure` (left-over terms, or a gap before it) or `succeeded`."""
    if not result.succeeded:
        return FAILED
    if result.overflow or gap is not None or result.status == PARTIAL_FAILURE:
        return PARTIAL_FAILURE
    return SUCCEEDED


def warnings_of(result: ExecutionResult, gap: Gap | None = None) -> list[str]:
    """Human-readable reasons for a partial failure."""
    warnings: list[str] = []
    if gap is not None:
        warnings.append(gap_message(gap))
    if result.overflow:
        warnings.append(
            f"{result.overflow} new term(s) beyond max_signals were left for the next execution"
        )
    if result.no_index_matched:
        warnings.append(NO_INDEX_MATCHED)
    if result.future_documents:
        warnings.append(
            f"{result.future_documents} document(s) of the rule have a time later than the "
            "window's end: they alert only once the clock reaches that time"
        )
    return warnings


def gap_message(gap: Gap) -> str:
    """Kibana's wording, with the range."""
    return (
        f"{gap.seconds:.0f} s were not queried between the last covered execution "
        f"({iso(gap.start)}) and {iso(gap.end)}, beyond the catch-up maximum, so alerts may "
        "have been missed; run `detector backfill` over that range to cover it"
    )


def execution_doc(
    result: ExecutionResult,
    *,
    execution: ExecutionRef,
    timing: Timing,
    interval: str,
    gap: Gap | None = None,
    replica: Replica | None = None,
    notes: Sequence[str] = (),
    counted: str = COUNTED_BY_EXECUTION,
) -> dict[str, Any]:
    """The execution-log document of one execution; `notes` are further warnings (a failed
    window given up, clock skew); `counted` says where `alerts_written` comes from."""
    who = replica or Replica()
    doc: dict[str, Any] = {
        "@timestamp": iso(timing.ended),
        "kind": EXECUTION,
        "rule": {"id": result.rule_id, "name": result.rule_name, "interval": interval},
        "execution": {
            "id": execution.id,
            "type": execution.type,
            "status": status_of(result, gap),
            "scheduled": iso(result.now),
            "started": iso(timing.started),
            "ended": iso(timing.ended),
            "duration_ms": _millis(timing),
            "error": result.error,
            "warnings": [*warnings_of(result, gap), *notes],
            "no_index_matched": result.no_index_matched,
            "unavailable_clusters": list(result.unavailable_clusters),
        },
        "window": {
            "start": _iso_or_none(result.window_start),
            "end": _iso_or_none(result.window_end),
            "history_start": _iso_or_none(result.history_start),
        },
        "metrics": {
            "terms_checked": result.terms_checked,
            "new_terms": result.new_terms,
            "already_alerted": result.already_alerted,
            "alerts_written": result.alerts_written,
            "overflow": result.overflow,
            "search_ms": result.search_ms,
            "index_ms": result.index_ms,
            "requests": result.requests,
            "future_documents": result.future_documents,
            "alerts_counted": counted,
            "skipped_documents": result.skipped_documents,
            "held_terms": result.held,
        },
    }
    _add_trust(doc, result)
    doc["replica"] = {"id": who.id, "fenced": who.fenced}
    if gap is not None:
        doc["gap"] = {"seconds": gap.seconds, "start": iso(gap.start), "end": iso(gap.end)}
    return doc


def running_doc(
    result: ExecutionResult,
    *,
    execution: ExecutionRef,
    started: datetime,
    interval: str,
    replica: Replica | None = None,
) -> dict[str, Any]:
    """The document an execution writes when it starts (`result`: its rule and `now`)."""
    doc = execution_doc(
        result,
        execution=execution,
        timing=Timing(started, started),
        interval=interval,
        replica=replica,
    )
    doc["execution"].update(status=RUNNING, ended=None, duration_ms=None)
    return doc


def interrupted_doc(running: Mapping[str, Any], alerts: int, noticed: datetime) -> dict[str, Any]:
    """A `running` document of an execution that never ended, as `failed`, with the alerts
    its id wrote (counted in the alerts index) and when that was noticed."""
    doc = {
        key: dict(value) if isinstance(value, Mapping) else value for key, value in running.items()
    }
    doc["@timestamp"] = iso(noticed)
    doc["execution"].update(
        status=FAILED, ended=iso(noticed), error=INTERRUPTED, warnings=[INTERRUPTED]
    )
    doc["metrics"].update(alerts_written=alerts, alerts_counted=COUNTED_IN_ALERTS_INDEX)
    return doc


def _add_trust(doc: dict[str, Any], result: ExecutionResult) -> None:
    """The baseline (with the held terms, bounded) and the example skipped document."""
    if result.baseline is not None:
        baseline = dict(result.baseline)
        if result.held:
            baseline["held_terms"] = [list(values) for values in result.held_terms]
        doc["baseline"] = baseline
    if result.skipped_example is not None:
        doc["skipped"] = {"example": result.skipped_example}


def checkpoint_doc(
    rule_id: str, rule_name: str, now: datetime, updated: datetime
) -> dict[str, Any]:
    """The checkpoint of a rule: the `now` of its last successful scheduled execution."""
    return {
        "@timestamp": iso(updated),
        "kind": CHECKPOINT,
        "rule": {"id": rule_id, "name": rule_name},
        "checkpoint": iso(now),
    }


def checkpoint_id(rule_id: str) -> str:
    """The id of a rule's checkpoint document."""
    return f"checkpoint:{rule_id}"


def parse_checkpoint(source: Mapping[str, Any]) -> datetime:
    """The checkpoint time of a checkpoint document."""
    return datetime.fromisoformat(str(source["checkpoint"]).replace("Z", "+00:00"))


def _iso_or_none(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _millis(timing: Timing) -> int:
    return round((timing.ended - timing.started).total_seconds() * 1000)
