"""Baseline maturity: how much of the history window the rule's data covers. Pure.

A term is new when no matching document holds it in `[history_start, start]`; when the rule's
data only starts after `history_start` (a new data source, a fresh import), that history is
thinner than the rule says and every term looks new. The oldest document matching the rule's
query and exceptions (one `min` aggregation on the combined time, `oldest_body`) tells how far
back the data reaches: the coverage is the part of `[history_start, start]` it spans.

Two modes, globally (`DETECTOR_BASELINE`) or per rule (`baseline` in the rule file's
`[detector]` table): `alert` alerts as usual and marks each alert with the coverage; `hold`
writes no alert while the coverage is below 1 and records the held terms in the execution log.
Held terms are not alerted later: once the data covers the history, an execution alerts what is
new at its own time, and a term held earlier is then in its history (the brute-force oracle's
answer for that execution).

Once a rule's data is known to reach a history start, it reaches every later one:
`BaselineCache` keeps the oldest time per rule and asks again only for an earlier history start
(or while the data does not reach it yet: older data may be imported meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from detector.query.bodies import Body, first_seen_aggs, first_seen_of
from detector.query.window import TimeFields, Window
from detector.times import iso

ALERT = "alert"
HOLD = "hold"
MODES = (ALERT, HOLD)
# Held terms named in the execution log (all are counted).
HELD_TERMS_RECORDED = 100


@dataclass(frozen=True)
class Baseline:
    """How far back the rule's data reaches at one execution, and what that means."""

    since: datetime | None  # the oldest matching document at or before the window end
    history_start: datetime
    window_start: datetime
    mode: str = ALERT

    @property
    def coverage(self) -> float:
        """The part of `[history_start, start]` the data spans, from 0 to 1."""
        if self.since is None or self.since >= self.window_start:
            return 0.0
        if self.since <= self.history_start:
            return 1.0
        spanned = (self.window_start - self.since) / (self.window_start - self.history_start)
        return round(min(max(spanned, 0.0), 1.0), 4)

    @property
    def mature(self) -> bool:
        """Whether the data reaches the history start."""
        return self.since is not None and self.since <= self.history_start

    @property
    def holding(self) -> bool:
        """Whether this execution writes no alert because of the baseline."""
        return self.mode == HOLD and not self.mature

    def to_json(self) -> dict[str, object]:
        """The `baseline` object of the execution log and of `--json`."""
        return {
            "since": iso(self.since) if self.since is not None else None,
            "coverage": self.coverage,
            "mature": self.mature,
            "mode": self.mode,
        }

    def describe(self) -> str:
        """A short readable phrase."""
        since = iso(self.since) if self.since is not None else "none"
        return f"baseline covers {self.coverage:.0%} of the history (data since {since})"


def oldest_body(base: Body, fields: TimeFields, window: Window) -> Body:
    """The oldest combined time of the documents matching `base` up to the window end."""
    bounds = {"lte": iso(window.end), "format": "strict_date_optional_time"}
    primary = {"range": {fields.primary: dict(bounds)}}
    up_to: Body = primary
    if fields.fallback is not None:
        fallback = {
            "bool": {
                "filter": [
                    {"range": {fields.fallback: dict(bounds)}},
                    {"bool": {"must_not": {"exists": {"field": fields.primary}}}},
                ]
            }
        }
        up_to = {"bool": {"should": [primary, fallback], "minimum_should_match": 1}}
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": [base, up_to]}},
        "aggs": first_seen_aggs(fields),
    }


def parse_oldest(response: Mapping[str, object]) -> datetime | None:
    """The oldest time of an `oldest_body` answer (None: no document)."""
    aggs = response.get("aggregations")
    return first_seen_of(aggs) if isinstance(aggs, Mapping) else None


@dataclass
class BaselineCache:
    """The oldest time known per rule, and which rules were seen immature (thread-safe)."""

    oldest: dict[str, datetime] = field(default_factory=dict)
    immature: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def known(self, rule_id: str, history_start: datetime) -> datetime | None:
        """The cached oldest time when it reaches `history_start` (no need to ask), else None."""
        with self.lock:
            since = self.oldest.get(rule_id)
        return since if since is not None and since <= history_start else None

    def remember(self, rule_id: str, baseline: Baseline) -> bool:
        """Record an execution's baseline; True when the rule was seen immature before and now
        is mature (the moment to say so, once)."""
        with self.lock:
            if baseline.since is not None:
                previous = self.oldest.get(rule_id)
                self.oldest[rule_id] = min(previous or baseline.since, baseline.since)
            if not baseline.mature:
                self.immature.add(rule_id)
                return False
            if rule_id in self.immature:
                self.immature.discard(rule_id)
                return True
            return False
