"""Kibana-style Security alerts for new terms (pure: no Elasticsearch access).

The contract types are defined first; the document builder follows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detector.rules import Rule


@dataclass(frozen=True)
class NewTerm:
    """One term (a values-tuple of the rule's new_terms_fields) first seen in the window."""

    values: tuple[Any, ...]  # in rule.new_terms_fields order, JSON types kept
    first_seen: datetime  # min combined timestamp (override, else @timestamp) in the window; UTC
    hit: Mapping[str, Any]  # the oldest matching doc in the window: {"_index", "_id", "_source"}
    event_count: int = 1  # matching events with this term in the window
    actions: tuple[str, ...] = ()  # distinct event.action values of those events, sorted


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


def _digest(parts: Sequence[Any]) -> str:
    canonical = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def term_key(rule: Rule, values: Sequence[Any]) -> str:
    """A stable hash of (rule_id, fields, values)."""
    return _digest(["term", rule.rule_id, list(rule.new_terms_fields), list(values)])


def alert_id(rule: Rule, term: NewTerm) -> str:
    """The alert `_id`: depends on rule, term and first-seen time only, never on the document.

    Kibana hashes the chosen source document's index/id into the alert id, so two executions
    that pick different documents for one term write two alerts (elastic/kibana#174148).
    """
    return _digest(
        [
            "alert",
            rule.rule_id,
            list(rule.new_terms_fields),
            list(term.values),
            epoch_ms(term.first_seen),
        ]
    )


def build_alert(rule: Rule, term: NewTerm, ctx: ExecutionContext) -> dict[str, Any]:
    """The alert document for one new term (being written)."""
    raise NotImplementedError
