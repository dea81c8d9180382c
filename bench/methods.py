"""The request patterns the benchmark compares with the detector (a script's helper).

- `kibana_v1`: Kibana's V1 new_terms requests issued by hand (notes §1.3), without its Painless
  runtime field and `bucket_selector` (the test node has no scripting; the `first_seen > from`
  selection is done here), so it flatters Kibana: phase 1 composite pages until an empty page;
  single field: phase 2 `terms` + `include` + `min` over `[history_start, to]`, phase 3 one
  `terms` + `include` + `top_hits`; several fields: batches of 500 `should` clauses, each a
  composite with `min` (phase 2) and, when new ones came back, the same with `top_hits`;
- `floor`: what Elasticsearch must do at least: plain composite pages, the history check with a
  `terms` filter (single: `terms` + `include`; several: a superset composite), one aggregation
  with the first document of each new term.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detector.es.client import Elastic
from detector.query import batched, bodies
from detector.query.bodies import Plan
from detector.results import Values
from detector.times import to_millis

Body = dict[str, Any]
PAGE = bodies.PAGE_SIZE
BATCH = 500


class TookElastic(Elastic):
    """An `Elastic` that also sums Elasticsearch's own `took` of its searches."""

    took_ms = 0

    def search(self, index: Any, body: Any, expect: Any = ()) -> dict[str, Any]:
        response = super().search(index, body, expect)
        self.took_ms += int(response.get("took", 0))
        return response


def _body(filters: list[Body], aggs: Body) -> Body:
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": filters}},
        "aggs": aggs,
    }


def _window(plan: Plan) -> Body:
    return bodies.time_range(plan.fields, plan.window.start, plan.window.end)


def _pages(elastic: Elastic, plan: Plan, *, empty_page: bool) -> list[list[Values]]:
    pages, after = [], None
    sources = [{f: {"terms": {"field": f}}} for f in plan.terms_fields]
    while True:
        composite: Body = {"size": PAGE, "sources": sources}
        if after is not None:
            composite["after"] = after
        body = _body([plan.base, _window(plan)], {"t": {"composite": composite}})
        agg = elastic.search(plan.rule.index, body)["aggregations"]["t"]
        buckets = agg["buckets"]
        if buckets:
            pages.append([tuple(b["key"][f] for f in plan.terms_fields) for b in buckets])
        after = agg.get("after_key")
        # Kibana stops on a page without after_key, i.e. after one extra empty page.
        if after is None or (not empty_page and len(buckets) < PAGE):
            return pages


def kibana_v1(elastic: Elastic, plan: Plan) -> set[Values]:
    """Kibana's V1 requests; the new terms (those whose first document is alerted)."""
    found: set[Values] = set()
    for page in _pages(elastic, plan, empty_page=True):
        if len(plan.terms_fields) == 1:
            found |= _kibana_single(elastic, plan, [v[0] for v in page])
        else:
            for start in range(0, len(page), BATCH):
                found |= _kibana_batch(elastic, plan, page[start : start + BATCH])
    return found


def _kibana_range(plan: Plan) -> Body:
    return bodies.time_range(plan.fields, plan.window.history_start, plan.window.end)


def _min(plan: Plan) -> Body:
    return {"first_seen": {"min": {"field": plan.fields.primary}}}


def _kibana_single(elastic: Elastic, plan: Plan, values: list[Any]) -> set[Values]:
    field, start_ms = plan.terms_fields[0], to_millis(plan.window.start)
    include = [bodies.include_value(v) for v in values]
    terms = {"field": field, "size": PAGE, "include": include}
    body = _body([plan.base, _kibana_range(plan)], {"t": {"terms": terms, "aggs": _min(plan)}})
    buckets = elastic.search(plan.rule.index, body)["aggregations"]["t"]["buckets"]
    new = [b["key"] for b in buckets if (b["first_seen"]["value"] or 0) > start_ms]
    if not new:
        return set()
    terms = {"field": field, "size": PAGE, "include": [bodies.include_value(v) for v in new]}
    top = {"docs": {"top_hits": {"size": 1, "sort": [{plan.fields.primary: "asc"}]}}}
    body = _body([plan.base, _window(plan)], {"t": {"terms": terms, "aggs": top}})
    buckets = elastic.search(plan.rule.index, body)["aggregations"]["t"]["buckets"]
    return {(b["key"],) for b in buckets}


def _kibana_batch(elastic: Elastic, plan: Plan, batch: Sequence[Values]) -> set[Values]:
    fields, start_ms = plan.terms_fields, to_millis(plan.window.start)
    should = [
        {"bool": {"must": [{"match": {f: v}} for f, v in zip(fields, combo, strict=True)]}}
        for combo in batch
    ]
    match = {"bool": {"should": should, "minimum_should_match": 1}}
    sources = [{f: {"terms": {"field": f}}} for f in fields]
    composite = {"size": len(batch), "sources": sources}
    body = _body(
        [plan.base, _kibana_range(plan), match], {"t": {"composite": composite, "aggs": _min(plan)}}
    )
    buckets = elastic.search(plan.rule.index, body)["aggregations"]["t"]["buckets"]
    wanted = set(batch)
    new = {
        key
        for b in buckets
        if (b["first_seen"]["value"] or 0) > start_ms
        and (key := tuple(b["key"][f] for f in fields)) in wanted
    }
    if not new:
        return set()
    top = {**_min(plan), "docs": {"top_hits": {"size": 1, "sort": [{plan.fields.primary: "asc"}]}}}
    body = _body(
        [plan.base, _kibana_range(plan), match], {"t": {"composite": composite, "aggs": top}}
    )
    elastic.search(plan.rule.index, body)
    return new


def floor(elastic: Elastic, plan: Plan) -> set[Values]:
    """The least Elasticsearch must do for the same new terms."""
    new: list[Values] = []
    for page in _pages(elastic, plan, empty_page=False):
        seen = _floor_seen(elastic, plan, page)
        new.extend(values for values in page if values not in seen)
    if not new:
        return set()
    top = {"doc": {"top_hits": {"size": 1, "sort": batched.FIRST_DOCUMENT_SORT}}}
    if len(plan.terms_fields) == 1:
        field = plan.terms_fields[0]
        terms = {
            "field": field,
            "size": len(new),
            "include": [bodies.include_value(v[0]) for v in new],
        }
        aggs: Body = {"t": {"terms": terms, "aggs": top}}
    else:
        filters = {str(n): bodies.terms_clause(plan.terms_fields, v) for n, v in enumerate(new)}
        aggs = {"t": {"filters": {"filters": filters}, "aggs": top}}
    elastic.search(plan.rule.index, _body([plan.base, _window(plan)], aggs))
    return set(new)


def _floor_seen(elastic: Elastic, plan: Plan, page: list[Values]) -> set[Values]:
    if len(plan.terms_fields) == 1:
        body = bodies.history_single(
            plan.base, plan.fields, plan.window, plan.terms_fields[0], [v[0] for v in page]
        )
        return {(k,) for k in bodies.parse_history_single(elastic.search(plan.rule.index, body))}
    wanted, seen, after = set(page), set[Values](), None
    while True:
        body = bodies.history_superset(
            plan.base, plan.fields, plan.window, plan.terms_fields, page, after
        )
        combos, after = bodies.parse_history_multi(
            elastic.search(plan.rule.index, body), plan.terms_fields
        )
        seen.update(c for c in combos if c in wanted)
        if after is None:
            return seen
