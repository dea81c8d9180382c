"""Request bodies that ask about many terms at once, and the parsing of their answers. Pure.

Phase 1 reads only the window's terms (a plain composite: no per-bucket sub-aggregation), so
what used to be asked per window term is asked here for the few that turn out new:

- first-seen times of the new terms only (`first_seen_single` / `first_seen_multi`), because the
  engine orders all new terms by it before truncating to `max_signals`, and the same-episode
  dedup and the alert id use it;
- phase 3, the details of the chosen terms in one aggregation per batch (`details`), instead of
  one search per term in an `_msearch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.query.bodies import (
    ACTIONS_SIZE,
    Body,
    WindowTerm,
    first_seen_aggs,
    first_seen_of,
    include_value,
    terms_clause,
    time_range,
)
from detector.query.window import TimeFields, Window
from detector.results import Values
from detector.times import from_millis

# The first document: `@timestamp`, then index and event id, so ties are broken the same way in
# every run (Kibana sorts on the timestamp alone and its ties cause kibana#174148).
FIRST_DOCUMENT_SORT = [
    {"@timestamp": {"order": "asc", "unmapped_type": "date"}},
    {"_index": {"order": "asc"}},
    {"event.id": {"order": "asc", "unmapped_type": "keyword"}},
]


def _search(filters: list[Body], aggs: Body) -> Body:
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": filters}},
        "aggs": aggs,
    }


def missing_override(base: Body, fields: TimeFields, window: Window) -> Body:
    """Is there a window document without the override field? (`total` says: 0 or 1.)

    When there is none, the combined time of every window document is the override, and a
    single `min` on it replaces the two filtered `min`s of the fallback shape.
    """
    lacking = {"bool": {"must_not": {"exists": {"field": fields.primary}}}}
    filters = [base, time_range(fields, window.start, window.end), lacking]
    # `track_total_hits: 1` stops counting at the first document found.
    return {"size": 0, "track_total_hits": 1, "query": {"bool": {"filter": filters}}}


def has_hits(response: Mapping[str, Any]) -> bool:
    """Whether a `missing_override` answer counted a document."""
    total = response.get("hits", {}).get("total", 0)
    value = total.get("value", 0) if isinstance(total, Mapping) else total
    return int(value) > 0


def first_seen_single(
    base: Body,
    fields: TimeFields,
    window: Window,
    time_aggs: TimeFields,
    field: str,
    values: Sequence[Any],
) -> Body:
    """The first-seen time in `[start, end]` of each of `values` of one field.

    A `terms` aggregation with an explicit `include` list is exact (every listed value present
    gets its bucket); `time_aggs` is `fields`, or the override alone when no window document
    lacks it.
    """
    terms = {
        "field": field,
        "size": len(values),
        "include": [include_value(value) for value in values],
    }
    return _search(
        [base, time_range(fields, window.start, window.end), {"terms": {field: list(values)}}],
        {"seen": {"terms": terms, "aggs": first_seen_aggs(time_aggs)}},
    )


def parse_first_seen_single(response: Mapping[str, Any]) -> dict[Values, datetime]:
    """The first-seen time of each value a `first_seen_single` answer holds."""
    buckets = response.get("aggregations", {}).get("seen", {}).get("buckets", [])
    found: dict[Values, datetime] = {}
    for bucket in buckets:
        first = first_seen_of(bucket)
        if first is not None:
            found[(bucket["key"],)] = first
    return found


def first_seen_multi(
    base: Body,
    fields: TimeFields,
    window: Window,
    time_aggs: TimeFields,
    terms_fields: Sequence[str],
    combos: Sequence[Values],
) -> Body:
    """The first-seen time in `[start, end]` of each combination: one `filters` bucket each.

    A filter per combination is exact whatever arrays the documents hold (a composite would
    also emit the cross products of arrays).
    """
    buckets = {str(n): terms_clause(terms_fields, combo) for n, combo in enumerate(combos)}
    return _search(
        [base, time_range(fields, window.start, window.end)],
        {"seen": {"filters": {"filters": buckets}, "aggs": first_seen_aggs(time_aggs)}},
    )


def parse_first_seen_multi(
    response: Mapping[str, Any], combos: Sequence[Values]
) -> dict[Values, datetime]:
    """The first-seen time of each combination of a `first_seen_multi` answer."""
    buckets = response.get("aggregations", {}).get("seen", {}).get("buckets", {})
    found: dict[Values, datetime] = {}
    for n, combo in enumerate(combos):
        bucket = buckets.get(str(n))
        first = None if bucket is None or not bucket.get("doc_count") else first_seen_of(bucket)
        if first is not None:
            found[combo] = first
    return found


def details(
    base: Body,
    fields: TimeFields,
    window: Window,
    terms_fields: Sequence[str],
    terms: Sequence[WindowTerm],
) -> Body:
    """Phase 3 for a batch of chosen terms, in one aggregation.

    `counts` has one `filters` bucket per term over the window (its document count is the event
    count, with the actions); `firsts` has one per term restricted to documents whose combined
    time equals the term's first-seen time, with the first of them in `FIRST_DOCUMENT_SORT`
    order: the same document the former one-search-per-term request chose.
    """
    counts = {str(n): terms_clause(terms_fields, term.values) for n, term in enumerate(terms)}
    firsts = {
        str(n): {
            "bool": {
                "filter": [
                    terms_clause(terms_fields, term.values),
                    time_range(fields, term.first_seen, term.first_seen),
                ]
            }
        }
        for n, term in enumerate(terms)
    }
    aggs = {
        "counts": {
            "filters": {"filters": counts},
            "aggs": {"actions": {"terms": {"field": "event.action", "size": ACTIONS_SIZE}}},
        },
        "firsts": {
            "filters": {"filters": firsts},
            "aggs": {"doc": {"top_hits": {"size": 1, "sort": FIRST_DOCUMENT_SORT}}},
        },
    }
    return _search([base, time_range(fields, window.start, window.end)], aggs)


@dataclass(frozen=True)
class Details:
    """What phase 3 found for one term."""

    hit: dict[str, Any] | None
    event_count: int
    actions: tuple[str, ...]


def parse_details(response: Mapping[str, Any], count: int) -> list[Details]:
    """The details of each of the `count` terms of a `details` answer, in order."""
    aggs = response.get("aggregations", {})
    counts = aggs.get("counts", {}).get("buckets", {})
    firsts = aggs.get("firsts", {}).get("buckets", {})
    found = []
    for n in range(count):
        bucket = counts.get(str(n), {})
        hits = firsts.get(str(n), {}).get("doc", {}).get("hits", {}).get("hits", [])
        hit = None
        if hits:
            hit = {key: hits[0][key] for key in ("_index", "_id", "_source") if key in hits[0]}
        actions = sorted(
            str(action["key"]) for action in bucket.get("actions", {}).get("buckets", [])
        )
        found.append(Details(hit, int(bucket.get("doc_count", 0)), tuple(actions)))
    return found


# --- phase 3 without a first-seen request -----------------------------------------------------

# The combined time in epoch ms (`numeric_type: date` also for a `date_nanos` field), then the
# first-document order: the earliest hit of a bucket sorted so is the document `details` picks.
_COMBINED_FIRST = {"order": "asc", "numeric_type": "date", "unmapped_type": "date"}


def details_unseen(
    base: Body,
    fields: TimeFields,
    window: Window,
    terms_fields: Sequence[str],
    values: Sequence[Values],
) -> Body:
    """Phase 3 for new terms whose first-seen time is not asked yet: when they all fit in
    `max_signals`, every one is alerted whatever their order, so the first-seen time can come
    with the first document instead of from a request of its own.

    One bucket per term (a `terms` + `include` for one field, exact like phase 2; a `filters`
    bucket per combination for several) with the actions and, per time field, the earliest
    document: those with the override sorted on it, those without on the fallback (Kibana's
    combined time, without a runtime field). `parse_details_unseen` takes the earlier of the two,
    ties broken in `FIRST_DOCUMENT_SORT` order as `details` breaks them.
    """
    aggs = {"actions": _actions_agg(), **_earliest(fields)}
    in_window = time_range(fields, window.start, window.end)
    if len(terms_fields) == 1:
        field, flat = terms_fields[0], [combo[0] for combo in values]
        terms = {"field": field, "size": len(flat), "include": [include_value(v) for v in flat]}
        return _search(
            [base, in_window, {"terms": {field: flat}}],
            {"unseen": {"terms": terms, "aggs": aggs}},
        )
    buckets = {str(n): terms_clause(terms_fields, combo) for n, combo in enumerate(values)}
    return _search([base, in_window], {"unseen": {"filters": {"filters": buckets}, "aggs": aggs}})


def _actions_agg() -> Body:
    return {"terms": {"field": "event.action", "size": ACTIONS_SIZE}}


def _earliest(fields: TimeFields) -> Body:
    has_primary: Body = {"exists": {"field": fields.primary}}
    groups: list[tuple[str, str, Body]] = [("primary", fields.primary, has_primary)]
    if fields.fallback is not None:
        groups.append(("fallback", fields.fallback, {"bool": {"must_not": has_primary}}))
    return {
        name: {
            "filter": only,
            "aggs": {
                "doc": {
                    "top_hits": {
                        "size": 1,
                        "sort": [{field: dict(_COMBINED_FIRST)}, *FIRST_DOCUMENT_SORT],
                    }
                }
            },
        }
        for name, field, only in groups
    }


@dataclass(frozen=True)
class Unseen:
    """What `details_unseen` found for one new term: its first-seen time and its details."""

    values: Values
    first_seen: datetime
    details: Details


def parse_details_unseen(response: Mapping[str, Any], values: Sequence[Values]) -> list[Unseen]:
    """The first-seen time and details of each term of a `details_unseen` answer, in the order
    of `values`; a term without documents any more (deleted since phase 1) is left out."""
    buckets = response.get("aggregations", {}).get("unseen", {}).get("buckets", [])
    if isinstance(buckets, Mapping):
        by_values = {combo: buckets.get(str(n)) for n, combo in enumerate(values)}
    else:
        keyed = {(bucket["key"],): bucket for bucket in buckets}
        by_values = {combo: keyed.get(combo) for combo in values}
    found = []
    for combo, bucket in by_values.items():
        first = _earliest_hit(bucket) if bucket else None
        if first is not None:
            millis, hit = first
            found.append(Unseen(combo, from_millis(millis), _details(bucket or {}, hit)))
    return found


def _earliest_hit(bucket: Mapping[str, Any]) -> tuple[float, dict[str, Any]] | None:
    hits = [
        hit
        for name in ("primary", "fallback")
        for hit in bucket.get(name, {}).get("doc", {}).get("hits", {}).get("hits", [])
    ]
    if not hits:
        return None
    earliest = min(
        hits,
        key=lambda hit: [(value is None, "" if value is None else value) for value in hit["sort"]],
    )
    return float(earliest["sort"][0]), earliest


def _details(bucket: Mapping[str, Any], hit: Mapping[str, Any]) -> Details:
    kept = {key: hit[key] for key in ("_index", "_id", "_source") if key in hit}
    actions = sorted(str(action["key"]) for action in bucket.get("actions", {}).get("buckets", []))
    return Details(kept, int(bucket.get("doc_count", 0)), tuple(actions))
