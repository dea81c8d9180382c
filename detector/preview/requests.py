"""The request bodies of a preview, and the parsing of their answers. Pure.

- `spans`: a composite aggregation of the rule's terms by bucket of time over the whole range
  (`[first history start, last window end]`), each bucket with the first and last time of the
  term in it, within the rule's filter (query and exceptions: `detector.query.bodies`), on the
  combined time as the engine measures it: documents with the override by it, those without by
  `@timestamp` (a second composite, when the fallback applies), never a script;
- `details`: phase 3 of many would-be alerts of different executions in one aggregation, each
  bucket restricted to its own execution's window, in the engine's shape
  (`detector.query.batched.details`, parsed by its `parse_details`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from detector.query.batched import FIRST_DOCUMENT_SORT
from detector.query.bodies import ACTIONS_SIZE, PAGE_SIZE, Body, terms_clause, time_range
from detector.query.window import TimeFields, Window
from detector.results import Values
from detector.times import from_millis, iso

_BUCKET = "preview_bucket"


def bucket_width(windows: Sequence[Window]) -> timedelta:
    """The widest time bucket that keeps the answer exact: the shortest history length, in
    whole milliseconds (Elasticsearch's `fixed_interval` unit)."""
    shortest = min(window.history_length for window in windows)
    return timedelta(milliseconds=max(int(shortest / timedelta(milliseconds=1)), 1))


def spans(
    base: Body,
    fields: TimeFields,
    time_field: str,
    reach: tuple[datetime, datetime],
    terms_fields: Sequence[str],
    width: timedelta,
    after: Mapping[str, Any] | None = None,
) -> Body:
    """One composite page of (term, time bucket) with the first and last time in the bucket.

    `time_field` is the override (documents holding it) or the fallback (documents without the
    override): the engine's combined time, one composite each.
    """
    millis = int(width / timedelta(milliseconds=1))
    sources: list[Body] = [{field: {"terms": {"field": field}}} for field in terms_fields]
    sources.append(
        {_BUCKET: {"date_histogram": {"field": time_field, "fixed_interval": f"{millis}ms"}}}
    )
    composite: Body = {"size": PAGE_SIZE, "sources": sources}
    if after is not None:
        composite["after"] = dict(after)
    has_override: Body = {"exists": {"field": fields.primary}}
    which = has_override if time_field == fields.primary else {"bool": {"must_not": has_override}}
    filters = [base, time_range(fields, *reach), which]
    aggs = {
        "spans": {
            "composite": composite,
            "aggs": {
                "first": {"min": {"field": time_field}},
                "last": {"max": {"field": time_field}},
            },
        }
    }
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": filters}},
        "aggs": aggs,
    }


Bucketed = dict[tuple[Values, int], tuple[datetime, datetime]]


def parse_spans(
    response: Mapping[str, Any], terms_fields: Sequence[str], into: Bucketed
) -> dict[str, Any] | None:
    """Add a `spans` page's (term, bucket) -> (first, last) to `into` (merged with what is
    there: the other time field's composite); the key of the next page, if there is one."""
    agg = response.get("aggregations", {}).get("spans", {})
    buckets = agg.get("buckets", [])
    for bucket in buckets:
        key = bucket["key"]
        first, last = bucket["first"]["value"], bucket["last"]["value"]
        if first is None or last is None:
            continue
        slot = (tuple(key[field] for field in terms_fields), int(key[_BUCKET]))
        found = (from_millis(first), from_millis(last))
        known = into.get(slot)
        into[slot] = found if known is None else (min(known[0], found[0]), max(known[1], found[1]))
    return agg.get("after_key") if len(buckets) >= PAGE_SIZE else None


def details(
    base: Body,
    fields: TimeFields,
    terms_fields: Sequence[str],
    alerts: Sequence[tuple[Values, datetime, Window]],
) -> Body:
    """Phase 3 of would-be alerts (term, first-seen time, window of its execution) in one
    aggregation: per alert the documents of the term in its window (count, actions) and the
    first of those at its first-seen time (`FIRST_DOCUMENT_SORT`), as the engine's `details`."""
    counts = {
        str(n): {"bool": {"filter": [terms_clause(terms_fields, values), _within(fields, window)]}}
        for n, (values, _, window) in enumerate(alerts)
    }
    firsts = {
        str(n): {
            "bool": {
                "filter": [
                    terms_clause(terms_fields, values),
                    time_range(fields, first_seen, first_seen),
                ]
            }
        }
        for n, (values, first_seen, _) in enumerate(alerts)
    }
    reach = time_range(fields, min(w.start for _, _, w in alerts), max(w.end for _, _, w in alerts))
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
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": [base, reach]}},
        "aggs": aggs,
    }


def _within(fields: TimeFields, window: Window) -> Body:
    return time_range(fields, window.start, window.end)


def prior_alerts(
    rule_id: str, reach: tuple[datetime, datetime], after: Mapping[str, Any] | None = None
) -> Body:
    """One composite page of the rule's alerts already in the alerts index whose first-seen
    time is within `reach`: (term key, first-seen time), what the engine's same-episode check
    (`AlertStore.already_alerted`) compares."""
    composite: Body = {
        "size": PAGE_SIZE,
        "sources": [
            {"key": {"terms": {"field": "detector.term_key"}}},
            {"first_seen": {"terms": {"field": "detector.first_seen"}}},
        ],
    }
    if after is not None:
        composite["after"] = dict(after)
    within = {"gte": iso(reach[0]), "lte": iso(reach[1]), "format": "strict_date_optional_time"}
    filters = [
        {"term": {"kibana.alert.rule.rule_id": rule_id}},
        {"range": {"detector.first_seen": within}},
    ]
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": filters}},
        "aggs": {"prior": {"composite": composite}},
    }


def parse_prior_alerts(
    response: Mapping[str, Any], into: dict[str, list[datetime]]
) -> dict[str, Any] | None:
    """Add a `prior_alerts` page's term key -> first-seen times to `into`; the next key."""
    agg = response.get("aggregations", {}).get("prior", {})
    buckets = agg.get("buckets", [])
    for bucket in buckets:
        into.setdefault(str(bucket["key"]["key"]), []).append(
            from_millis(bucket["key"]["first_seen"])
        )
    return agg.get("after_key") if len(buckets) >= PAGE_SIZE else None
