"""Request bodies for each phase of an execution, and the parsing of their answers. Pure.

Kibana's V1 (aggregation) approach, without scripts (the target clusters may have no Painless):

- the combined timestamp (override, else `@timestamp`) is never a runtime field; ranges use
  Kibana's own fallback shape (`build_events_query.ts` `buildTimeRangeFilter`) and the minimum
  combined time is the smaller of two filtered `min` aggregations, combined here;
- history is asked directly over `[history_start, start]` ("was this term seen there?") instead
  of Kibana's `min(first_seen) > from` bucket_selector over `[history_start, end]`: the same
  answer (§1.3 "new decided precisely") with no pipeline script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.query.window import TimeFields, Window
from detector.results import Values
from detector.rules import Rule
from detector.times import from_millis, iso

Body = dict[str, Any]

# Kibana's composite page size (`NT/build_new_terms_aggregation.ts` PAGE_SIZE).
PAGE_SIZE = 10_000
# Kibana's multi-field batch (`NT/multi_terms_composite.ts` BATCH_SIZE); halved on clause limits.
BATCH_SIZE = 500
ACTIONS_SIZE = 50
_FIRST_SEEN_OVERRIDE, _FIRST_SEEN_FALLBACK = "first_seen_override", "first_seen_fallback"
_FUTURE = "future"


@dataclass(frozen=True)
class WindowTerm:
    """A new term of the window: its values and first (minimum combined) time in the window."""

    values: Values
    first_seen: datetime


@dataclass(frozen=True)
class Page:
    """One composite page: its terms and the key to ask the next page with (None: last page)."""

    terms: list[Values]
    after: dict[str, Any] | None


@dataclass(frozen=True)
class Plan:
    """What every phase of one execution shares: the rule, its window and time fields, and the
    filter of every phase (query and exceptions)."""

    rule: Rule
    window: Window
    fields: TimeFields
    base: Body
    # The concrete indices to search instead of the rule's patterns (one group of indices of
    # one type per field, `detector.engine.type_split`); empty: the rule's patterns.
    indices: tuple[str, ...] = ()
    # The clusters (`(local)`, remote aliases) where `_field_caps` found the indices this plan
    # searches: each must search a shard, else its shards are lost (`responses.check_shards`).
    clusters: tuple[str, ...] = ()

    @property
    def index(self) -> tuple[str, ...]:
        """What every search of this plan goes to."""
        return self.indices or self.rule.index

    @property
    def terms_fields(self) -> tuple[str, ...]:
        """The rule's new-terms fields."""
        return self.rule.new_terms_fields


def rule_filter(query: Mapping[str, Any], must_not: Sequence[Mapping[str, Any]]) -> Body:
    """The rule query with the exceptions excluded: the filter of every phase, history included.

    Kibana builds one `esFilter` (query, filters, exception filter) and uses it in all phases
    (`get_filter.ts`; §1.2 of the notes), so an excluded document is not history either.
    """
    body: Body = {"filter": [dict(query)]}
    if must_not:
        body["must_not"] = [dict(clause) for clause in must_not]
    return {"bool": body}


def time_range(fields: TimeFields, gte: datetime, lte: datetime) -> Body:
    """Documents whose combined time is in `[gte, lte]`, in Kibana's fallback shape."""
    bounds = {"gte": iso(gte), "lte": iso(lte), "format": "strict_date_optional_time"}
    primary = {"range": {fields.primary: dict(bounds)}}
    if fields.fallback is None:
        return primary
    fallback = {
        "bool": {
            "filter": [
                {"range": {fields.fallback: dict(bounds)}},
                {"bool": {"must_not": {"exists": {"field": fields.primary}}}},
            ]
        }
    }
    return {"bool": {"should": [primary, fallback], "minimum_should_match": 1}}


def _search(filters: list[Body], aggs: Body | None = None) -> Body:
    body: Body = {"size": 0, "track_total_hits": False, "query": {"bool": {"filter": filters}}}
    if aggs is not None:
        body["aggs"] = aggs
    return body


def first_seen_aggs(fields: TimeFields) -> Body:
    """Sub-aggregations giving a bucket's minimum combined time (see `first_seen_of`)."""
    if fields.fallback is None:
        return {_FIRST_SEEN_OVERRIDE: {"min": {"field": fields.primary}}}
    has_override = {"exists": {"field": fields.primary}}
    return {
        _FIRST_SEEN_OVERRIDE: {
            "filter": has_override,
            "aggs": {"min": {"min": {"field": fields.primary}}},
        },
        _FIRST_SEEN_FALLBACK: {
            "filter": {"bool": {"must_not": has_override}},
            "aggs": {"min": {"min": {"field": fields.fallback}}},
        },
    }


def first_seen_of(bucket: Mapping[str, Any]) -> datetime | None:
    """The minimum combined time of a bucket built with `first_seen_aggs` (None: no value)."""
    candidates: list[float] = []
    for name in (_FIRST_SEEN_OVERRIDE, _FIRST_SEEN_FALLBACK):
        agg = bucket.get(name)
        if agg is None:
            continue
        value = agg["min"]["value"] if "min" in agg else agg["value"]
        if value is not None:
            candidates.append(value)
    return from_millis(min(candidates)) if candidates else None


def _sources(fields: Sequence[str]) -> list[Body]:
    # No `missing_bucket`: a document lacking a field yields no term (Kibana, §4 "missing fields").
    return [{field: {"terms": {"field": field}}} for field in fields]


def window_terms(
    base: Body,
    fields: TimeFields,
    window: Window,
    terms_fields: Sequence[str],
    after: Mapping[str, Any] | None = None,
    future_after: datetime | None = None,
) -> Body:
    """Phase 1: one composite page of the terms seen in `[start, end]`.

    No sub-aggregation: phase 1 only needs the terms (a composite with the two filtered `min`s
    per bucket cost ~6x a plain one); first-seen times are asked for the new terms only
    (`batch_query.first_seen_single` / `first_seen_multi`). With `future_after`, the page also
    counts the documents later than it (`future_documents`).
    """
    composite: Body = {"size": PAGE_SIZE, "sources": _sources(terms_fields)}
    if after is not None:
        composite["after"] = dict(after)
    aggs: Body = {"terms": {"composite": composite}}
    if future_after is not None:
        aggs[_FUTURE] = future_documents(base, fields, future_after)
    return _search([base, time_range(fields, window.start, window.end)], aggs)


def future_documents(base: Body, fields: TimeFields, after: datetime) -> Body:
    """An aggregation counting the rule's documents whose time field is later than `after`.

    Such a document (a producer's clock ahead, a pipeline setting `event.ingested` wrongly)
    falls in no window until the clock reaches it, so it alerts late. `global` escapes the
    window's query so the count rides on phase 1's first page instead of a request of its own;
    the filter repeats the rule's query and exceptions.
    """
    later = {"range": {fields.primary: {"gt": iso(after), "format": "strict_date_optional_time"}}}
    return {"global": {}, "aggs": {"docs": {"filter": {"bool": {"filter": [base, later]}}}}}


def parse_future(response: Mapping[str, Any]) -> int:
    """The count of a `future_documents` aggregation (0 when it was not asked)."""
    agg = response.get("aggregations", {}).get(_FUTURE, {})
    return int(agg.get("docs", {}).get("doc_count", 0))


def parse_window_page(response: Mapping[str, Any], terms_fields: Sequence[str]) -> Page:
    """The terms of a phase-1 page and the key of the next page, if there is one."""
    agg = response.get("aggregations", {}).get("terms", {})
    buckets: list[Mapping[str, Any]] = agg.get("buckets", [])
    terms = _keys(buckets, terms_fields)
    # A short page is the last one: no extra empty request (Kibana always sends one, §1.3).
    after = agg.get("after_key") if len(buckets) >= PAGE_SIZE else None
    return Page(terms, after)


def _keys(buckets: Sequence[Mapping[str, Any]], terms_fields: Sequence[str]) -> list[Values]:
    # The hot loop of phase 1 (10,000 buckets a page): no generator per bucket.
    if len(terms_fields) == 1:
        (field,) = terms_fields
        return [(bucket["key"][field],) for bucket in buckets]
    return [tuple([bucket["key"][field] for field in terms_fields]) for bucket in buckets]


def include_value(value: Any) -> str:
    """A term value as the `include` list of a terms aggregation wants it (strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def history_single(
    base: Body, fields: TimeFields, window: Window, field: str, values: Sequence[Any]
) -> Body:
    """Phase 2, one field: which of `values` occur in `[history_start, start]`.

    An explicit `include` list makes the terms aggregation exact instead of top-N, and
    `size = len(values)` leaves room for all of them (Kibana, §1.3 phase 2).
    """
    terms = {
        "field": field,
        "size": len(values),
        "include": [include_value(value) for value in values],
    }
    return _search(
        [
            base,
            time_range(fields, window.history_start, window.start),
            {"terms": {field: list(values)}},
        ],
        {"seen": {"terms": terms}},
    )


def parse_history_single(response: Mapping[str, Any]) -> list[Any]:
    """The bucket keys of a `history_single` answer: values seen in the history.

    Keys compare equal to the composite keys of phase 1 in Python: strings for keyword and ip,
    numbers for numeric and date fields, and 1/0 for booleans (`True == 1`).
    """
    buckets = response.get("aggregations", {}).get("seen", {}).get("buckets", [])
    return [bucket["key"] for bucket in buckets]


def terms_clause(terms_fields: Sequence[str], values: Values) -> Body:
    """Documents holding this combination of values."""
    return {
        "bool": {
            "filter": [
                {"term": {field: value}} for field, value in zip(terms_fields, values, strict=True)
            ]
        }
    }


def history_multi(
    base: Body,
    fields: TimeFields,
    window: Window,
    terms_fields: Sequence[str],
    batch: Sequence[Values],
    after: Mapping[str, Any] | None = None,
) -> Body:
    """Phase 2, several fields: a composite page over the history of a batch of combinations.

    As Kibana (`NT/multi_terms_composite.ts`), the batch is a `should` of one clause per
    combination. Documents with arrays can add combinations outside the batch, so the answer is
    paged fully and intersected with the batch by the caller (Kibana's §1.3 item 7 edge).
    """
    match_batch = {
        "bool": {
            "should": [terms_clause(terms_fields, values) for values in batch],
            "minimum_should_match": 1,
        }
    }
    composite: Body = {"size": PAGE_SIZE, "sources": _sources(terms_fields)}
    if after is not None:
        composite["after"] = dict(after)
    return _search(
        [base, time_range(fields, window.history_start, window.start), match_batch],
        {"terms": {"composite": composite}},
    )


def parse_history_multi(
    response: Mapping[str, Any], terms_fields: Sequence[str]
) -> tuple[list[Values], dict[str, Any] | None]:
    """The combinations of a `history_multi` page and the key of the next page, if any."""
    agg = response.get("aggregations", {}).get("terms", {})
    buckets = agg.get("buckets", [])
    seen = _keys(buckets, terms_fields)
    after = agg.get("after_key") if len(buckets) >= PAGE_SIZE else None
    return seen, after


def history_superset(
    base: Body,
    fields: TimeFields,
    window: Window,
    terms_fields: Sequence[str],
    batch: Sequence[Values],
    after: Mapping[str, Any] | None = None,
) -> Body:
    """Phase 2, several fields, without `should` clauses: a composite page over the history
    of every document holding, in each field, one of the batch's values of that field.

    A superset of the batch's combinations (the cross product of the per-field values, and the
    arrays' extra combinations), so the caller intersects it with the batch; exact because a
    history document holding a batch combination passes every per-field `terms` filter and the
    composite emits that combination. A `terms` query is one query whatever its length (up to
    `index.max_terms_count`, 65,536), so no clause limit applies, unlike Kibana's batches of 500
    `should` clauses (`NT/multi_terms_composite.ts`).
    """
    per_field = [sorted({values[n] for values in batch}, key=str) for n in range(len(terms_fields))]
    composite: Body = {"size": PAGE_SIZE, "sources": _sources(terms_fields)}
    if after is not None:
        composite["after"] = dict(after)
    return _search(
        [
            base,
            time_range(fields, window.history_start, window.start),
            *(
                {"terms": {field: values}}
                for field, values in zip(terms_fields, per_field, strict=True)
            ),
        ],
        {"terms": {"composite": composite}},
    )
