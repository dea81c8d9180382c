"""What one execution found, typed, and the `ExecutionResult` made of it.

The phases hand `Findings` (with its `Trust`) to `result`, which adds what every execution
reports whatever its outcome (`Head`) and what it cost (`Meter`); a failed execution hands its
error instead of findings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.es.client import Elastic
from detector.query.baseline import HELD_TERMS_RECORDED
from detector.query.window import Window
from detector.results import (
    FAILED,
    PARTIAL_FAILURE,
    SUCCEEDED,
    ExecutionRef,
    ExecutionResult,
    Values,
)
from detector.rules import Rule


@dataclass(frozen=True)
class Trust:
    """What an execution says of its baseline, its skipped documents and the terms it held
    (with `hold` and an immature baseline, every fresh term is held instead of alerted)."""

    skipped_documents: int = 0
    skipped_example: str | None = None  # "index/id"
    baseline: dict[str, Any] | None = None  # `Baseline.to_json()`
    held_terms: tuple[Values, ...] = ()  # all of them; the result records the first ones


@dataclass(frozen=True)
class Findings:
    """What the phases of a successful execution found and wrote."""

    terms_checked: int = 0
    new_terms: int = 0
    already_alerted: int = 0
    alerts: tuple[dict[str, Any], ...] = ()
    created_ids: tuple[str, ...] = ()
    overflow_terms: tuple[Values, ...] = ()
    index_seconds: float = 0.0
    no_index_matched: bool = False
    future_documents: int = 0
    trust: Trust = Trust()

    @property
    def warned(self) -> bool:
        """A success with a warning (`partial failure`): terms left over, or no index matched
        (as Kibana's "no index matching" warning). Documents in the future are only noted: the
        window was covered, they alert once the clock reaches them."""
        return bool(self.overflow_terms or self.no_index_matched)


@dataclass(frozen=True)
class Head:
    """What an execution's result says whatever its outcome (no window: it failed before)."""

    rule: Rule
    now: datetime
    execution: ExecutionRef
    dry_run: bool
    window: Window | None


@dataclass(frozen=True)
class Cost:
    """What an execution cost: its duration, its time searching, its requests."""

    duration_ms: int
    search_ms: int
    requests: int


@dataclass(frozen=True)
class Meter:
    """The clock and the client's counters when an execution started."""

    started: float
    requests: int
    waited: float

    @classmethod
    def start(cls, elastic: Elastic) -> Meter:
        """Read them now."""
        return cls(time.monotonic(), elastic.stats.requests, elastic.stats.seconds)

    def spent(self, elastic: Elastic, outcome: Findings | str) -> Cost:
        """The execution's cost since `start`; its search time leaves the alerts' indexing out."""
        indexing = outcome.index_seconds if isinstance(outcome, Findings) else 0.0
        searched = elastic.stats.seconds - self.waited - indexing
        return Cost(
            duration_ms=round((time.monotonic() - self.started) * 1000),
            search_ms=round(max(searched, 0.0) * 1000),
            requests=elastic.stats.requests - self.requests,
        )


def result(head: Head, outcome: Findings | str, cost: Cost) -> ExecutionResult:
    """The result of an execution: its findings, or its error (`outcome` as a string)."""
    found = outcome if isinstance(outcome, Findings) else Findings()
    error = outcome if isinstance(outcome, str) else None
    status = FAILED if error is not None else PARTIAL_FAILURE if found.warned else SUCCEEDED
    window, trust = head.window, found.trust
    return ExecutionResult(
        rule_id=head.rule.rule_id,
        rule_name=head.rule.name,
        now=head.now,
        status=status,
        window_start=window.start if window else None,
        window_end=window.end if window else None,
        history_start=window.history_start if window else None,
        error=error,
        terms_checked=found.terms_checked,
        new_terms=found.new_terms,
        already_alerted=found.already_alerted,
        alerts_written=len(found.created_ids),
        alerts=found.alerts,
        created_ids=found.created_ids,
        overflow=len(found.overflow_terms),
        overflow_terms=found.overflow_terms,
        dry_run=head.dry_run,
        no_index_matched=found.no_index_matched,
        future_documents=found.future_documents,
        duration_ms=cost.duration_ms,
        search_ms=cost.search_ms,
        index_ms=round(found.index_seconds * 1000),
        requests=cost.requests,
        execution_id=head.execution.id,
        skipped_documents=trust.skipped_documents,
        skipped_example=trust.skipped_example,
        baseline=trust.baseline,
        held=len(trust.held_terms),
        held_terms=trust.held_terms[:HELD_TERMS_RECORDED],
    )
