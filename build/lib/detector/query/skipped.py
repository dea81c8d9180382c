"""Skipped documents: window documents that match the rule but produce no term. Pure.

Kibana's phase-1 composite has no `missing_bucket` (and its ES|QL variant filters with
`IS NOT NULL`), so a document lacking any new-terms field yields no term and never alerts
(§4 "missing fields" of the Kibana notes); an array field yields a term per value, so only an
absent (or null, or empty-array) field skips. The detector does the same, and counts them: a
broken parser or a renamed field shows the same day instead of silently alerting nothing.

No request of its own: the first phase-1 page (same filter, same window) carries a `filter`
aggregation, a `should` of one `must_not exists` per field (`skipped_agg`), whose `doc_count`
is exact, with the oldest such document as its example (`top_hits`). `skipped_body` asks the
same in a search of its own (for `detector explain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detector.query.bodies import Body, time_range
from detector.query.window import TimeFields, Window


@dataclass(frozen=True)
class Skipped:
    """How many window documents produced no term, and one of them (None when there is none)."""

    count: int = 0
    example_index: str | None = None
    example_id: str | None = None

    def example(self) -> str | None:
        """`index/id` of the example document, if any."""
        if self.example_id is None:
            return None
        return f"{self.example_index}/{self.example_id}"


def lacking_any(terms_fields: Sequence[str]) -> Body:
    """Documents missing at least one of the fields (`exists` is false for null and `[]`)."""
    absent = [{"bool": {"must_not": {"exists": {"field": name}}}} for name in terms_fields]
    return {"bool": {"should": absent, "minimum_should_match": 1}}


def skipped_body(
    base: Body, fields: TimeFields, window: Window, terms_fields: Sequence[str]
) -> Body:
    """Count the window's matching documents without a term, and fetch the oldest one."""
    filters = [base, time_range(fields, window.start, window.end), lacking_any(terms_fields)]
    return {
        "size": 1,
        "track_total_hits": True,
        "_source": False,
        "query": {"bool": {"filter": filters}},
        "sort": _oldest(fields),
    }


def skipped_agg(fields: TimeFields, terms_fields: Sequence[str]) -> Body:
    """The aggregation (beside a phase-1 composite) counting the documents without a term."""
    oldest = {"size": 1, "_source": False, "sort": _oldest(fields)}
    return {"filter": lacking_any(terms_fields), "aggs": {"example": {"top_hits": oldest}}}


def _oldest(fields: TimeFields) -> list[Body]:
    # The example: the oldest document, by the same sort in both shapes.
    return [{fields.primary: {"order": "asc", "unmapped_type": "date"}}, {"_index": "asc"}]


def parse_skipped_agg(agg: Mapping[str, Any] | None) -> Skipped:
    """The count and the example of a `skipped_agg` answer (none when it was not asked)."""
    if not agg:
        return Skipped()
    hits = agg.get("example", {}).get("hits", {}).get("hits", [])
    count = int(agg.get("doc_count", 0))
    if not count or not hits:
        return Skipped(count)
    return Skipped(count, str(hits[0].get("_index")), str(hits[0].get("_id")))


def merged(first: Skipped, second: Skipped) -> Skipped:
    """Both counts; the first example there is (several groups of indices)."""
    example = first if first.example_id is not None else second
    return Skipped(first.count + second.count, example.example_index, example.example_id)


def parse_skipped(response: Mapping[str, Any]) -> Skipped:
    """The count and the example of a `skipped_body` answer."""
    hits = response.get("hits", {})
    total = hits.get("total", 0)
    count = int(total.get("value", 0) if isinstance(total, Mapping) else total)
    found = hits.get("hits", [])
    if not count or not found:
        return Skipped(count)
    return Skipped(count, str(found[0].get("_index")), str(found[0].get("_id")))
