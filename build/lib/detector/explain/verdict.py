"""`detector explain`: why one term did or did not alert at one time. Pure.

The facts (gathered by `detector.explain.investigation` with the engine's own requests and filter)
are put
together here into a verdict, a readable text and JSON. The term is new at `at` exactly when the
engine would say so (§1.3 "new decided precisely" of the Kibana notes): a document matching the
rule's query and exceptions holds it in the window `[start, end]`, and none in the history
`[history_start, start]` (both ends inclusive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from detector.query.bodies import Body, terms_clause, time_range
from detector.query.window import TimeFields, Window
from detector.results import Values
from detector.rules.exceptions import ExceptionItem
from detector.times import from_millis, iso

NOT_IN_WINDOW = "not in the window"
EXCLUDED = "excluded by exceptions"
SEEN = "seen in the history"
ALERTED = "alerted"
OVERFLOW = "beyond max_signals"
HELD = "held"
WOULD_ALERT = "would alert"


@dataclass(frozen=True)
class DocRef:
    """One document: when (its combined time), where and which."""

    time: datetime | None
    index: str
    id: str

    def text(self) -> str:
        """`time (index/id)`."""
        when = iso(self.time) if self.time is not None else "?"
        return f"{when} ({self.index}/{self.id})"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"time": iso(self.time) if self.time else None, "index": self.index, "id": self.id}


@dataclass(frozen=True)
class ExceptionMatch:
    """An exception entry that removed documents of the term, in the window and the history."""

    origin: str
    field: str
    window: int
    history: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "origin": self.origin,
            "field": self.field,
            "window": self.window,
            "history": self.history,
        }


@dataclass(frozen=True)
class Explanation:
    """Everything `explain` found about one term at one time."""

    rule_id: str
    fields: tuple[str, ...]
    values: Values
    at: datetime
    window: Window
    window_count: int = 0
    first_seen: datetime | None = None
    first_document: DocRef | None = None
    last_history: DocRef | None = None
    exceptions: tuple[ExceptionMatch, ...] = ()
    alert_id: str | None = None
    overflow: bool = False
    baseline: Mapping[str, Any] | None = None
    held: bool = False

    @property
    def new(self) -> bool:
        """Whether the term is new at `at` (in the window, not in the history)."""
        return self.window_count > 0 and self.last_history is None

    @property
    def verdict(self) -> str:
        """One of the verdict constants of this module."""
        if not self.window_count:
            return EXCLUDED if any(item.window for item in self.exceptions) else NOT_IN_WINDOW
        if self.last_history is not None:
            return SEEN
        if self.alert_id is not None:
            return ALERTED
        if self.held:
            return HELD
        return OVERFLOW if self.overflow else WOULD_ALERT

    def reason(self) -> str:
        """The verdict in a sentence."""
        reasons = {
            NOT_IN_WINDOW: "no matching document holds it in the window",
            EXCLUDED: "its window documents are all removed by exceptions",
            SEEN: f"not new: seen in the history at {_ref(self.last_history)}",
            ALERTED: f"new, and alerted in this episode: alert {self.alert_id}",
            HELD: "new, but held: the baseline does not cover the history yet (mode hold)",
            OVERFLOW: "new, but beyond max_signals at that execution: a later execution "
            "alerts it while it is still new",
            WOULD_ALERT: "new, and no alert exists yet: an execution at that time alerts it",
        }
        return reasons[self.verdict]

    def lines(self) -> list[str]:
        """The readable output."""
        term = ", ".join(f"{f}={v}" for f, v in zip(self.fields, self.values, strict=True))
        window = self.window
        lines = [
            f"rule {self.rule_id} at {iso(self.at)}: {term}",
            f"  verdict: {self.reason()}",
            f"  window {iso(window.start)} .. {iso(window.end)}: {self._in_window()}",
            f"  history {iso(window.history_start)} .. {iso(window.start)}: "
            + (f"last seen {_ref(self.last_history)}" if self.last_history else "not seen"),
        ]
        lines += [
            f"  exception {item.origin} ({item.field}) removed {item.window} window and "
            f"{item.history} history document(s)"
            for item in self.exceptions
        ] or ["  exceptions: none removed a document of it"]
        lines.append(f"  alert of this episode: {self.alert_id or 'none'}")
        if self.new and self.alert_id is None:
            lines.append(f"  max_signals: {'beyond it' if self.overflow else 'within it'}")
        lines.append(f"  baseline: {_baseline_text(self.baseline)}")
        return lines

    def _in_window(self) -> str:
        if not self.window_count:
            return "no document"
        first = iso(self.first_seen) if self.first_seen else "?"
        document = self.first_document.text() if self.first_document else "?"
        return f"{self.window_count} document(s), first seen {first}, first document {document}"

    def to_json(self) -> dict[str, Any]:
        """The `--json` object."""
        first = self.first_document
        return {
            "rule_id": self.rule_id,
            "at": iso(self.at),
            "fields": list(self.fields),
            "values": list(self.values),
            "new": self.new,
            "verdict": self.verdict,
            "reason": self.reason(),
            "window": {"start": iso(self.window.start), "end": iso(self.window.end)},
            "history_start": iso(self.window.history_start),
            "documents": self.window_count,
            "first_seen": iso(self.first_seen) if self.first_seen else None,
            "first_document": first.to_json() if first else None,
            "last_history_document": self.last_history.to_json() if self.last_history else None,
            "exceptions": [item.to_json() for item in self.exceptions],
            "alert_id": self.alert_id,
            "overflow": self.overflow,
            "held": self.held,
            "baseline": dict(self.baseline) if self.baseline is not None else None,
        }


def _ref(doc: DocRef | None) -> str:
    return doc.text() if doc is not None else "-"


def _baseline_text(baseline: Mapping[str, Any] | None) -> str:
    if baseline is None:
        return "unknown"
    coverage = float(baseline.get("coverage") or 0.0)
    return f"covers {coverage:.0%} of the history (data since {baseline.get('since') or 'none'})"


# --- requests -----------------------------------------------------------------------------


def latest_history_body(
    base: Body, fields: TimeFields, window: Window, terms_fields: Sequence[str], values: Values
) -> Body:
    """The term's most recent history document in `[history_start, start]`, by combined time:
    the newest by the override, and (with a fallback) the newest of those lacking it."""
    newest = {"top_hits": {"size": 1, "_source": False, "sort": [{fields.primary: "desc"}]}}
    aggs: Body = {"override": {"filter": {"exists": {"field": fields.primary}}, "aggs": {}}}
    aggs["override"]["aggs"]["doc"] = newest
    if fields.fallback is not None:
        lacking = {"bool": {"must_not": {"exists": {"field": fields.primary}}}}
        by_fallback = {
            "top_hits": {"size": 1, "_source": False, "sort": [{fields.fallback: "desc"}]}
        }
        aggs["fallback"] = {"filter": lacking, "aggs": {"doc": by_fallback}}
    filters = [
        base,
        time_range(fields, window.history_start, window.start),
        terms_clause(terms_fields, values),
    ]
    return {"size": 0, "query": {"bool": {"filter": filters}}, "aggs": aggs}


def parse_latest_history(response: Mapping[str, Any]) -> DocRef | None:
    """The newest document of a `latest_history_body` answer (None: not in the history)."""
    found: list[DocRef] = []
    for name in ("override", "fallback"):
        hits = response.get("aggregations", {}).get(name, {}).get("doc", {}).get("hits", {})
        for hit in hits.get("hits", []):
            stamp = (hit.get("sort") or [None])[0]
            moment = from_millis(stamp) if isinstance(stamp, int | float) else None
            found.append(DocRef(moment, str(hit["_index"]), str(hit["_id"])))
    if not found:
        return None
    return max(found, key=lambda doc: doc.time.timestamp() if doc.time else float("-inf"))


def exceptions_body(
    query: Body,
    fields: TimeFields,
    window: Window,
    terms_fields: Sequence[str],
    values: Values,
    entries: Sequence[ExceptionItem],
) -> Body:
    """Per exception entry, the term's documents it matches in the window and in the history
    (under the rule's query without the exceptions)."""
    buckets = {
        str(number): {"bool": {"should": entry.clauses(), "minimum_should_match": 1}}
        for number, entry in enumerate(entries)
    }
    split = {
        "window": {"filter": time_range(fields, window.start, window.end)},
        "history": {"filter": time_range(fields, window.history_start, window.start)},
    }
    filters = [
        query,
        time_range(fields, window.history_start, window.end),
        terms_clause(terms_fields, values),
    ]
    return {
        "size": 0,
        "query": {"bool": {"filter": filters}},
        "aggs": {"entries": {"filters": {"filters": buckets}, "aggs": split}},
    }


def parse_exceptions(
    response: Mapping[str, Any], entries: Sequence[ExceptionItem]
) -> tuple[ExceptionMatch, ...]:
    """The entries of an `exceptions_body` answer that matched a document."""
    buckets = response.get("aggregations", {}).get("entries", {}).get("buckets", {})
    found = []
    for number, entry in enumerate(entries):
        bucket = buckets.get(str(number), {})
        in_window = int(bucket.get("window", {}).get("doc_count", 0))
        in_history = int(bucket.get("history", {}).get("doc_count", 0))
        if in_window or in_history:
            found.append(ExceptionMatch(entry.origin, entry.field, in_window, in_history))
    return tuple(found)


def episode_alert_body(
    rule_id: str, key: str, around: datetime, history: timedelta
) -> dict[str, Any]:
    """An alert of the rule for this term key whose first-seen time is within `history` of
    `around` (the same episode, as the engine's duplicate check counts it)."""
    bounds = {
        "gte": iso(around - history),
        "lte": iso(around + history),
        "format": "strict_date_optional_time",
    }
    filters = [
        {"term": {"kibana.alert.rule.rule_id": rule_id}},
        {"term": {"detector.term_key": key}},
        {"range": {"detector.first_seen": bounds}},
    ]
    return {
        "size": 1,
        "_source": ["detector.first_seen"],
        "query": {"bool": {"filter": filters}},
        "sort": [{"detector.first_seen": "desc"}],
    }


def parse_episode_alert(response: Mapping[str, Any]) -> str | None:
    """The id of the alert an `episode_alert_body` answer found."""
    hits = response.get("hits", {}).get("hits", [])
    return str(hits[0]["_id"]) if hits else None
