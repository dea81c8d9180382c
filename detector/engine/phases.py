"""The requests of phases 1 to 3 of one execution, each at what it must ask Elasticsearch.

1. window terms: plain composite pages (no sub-aggregation), streamed: only the new terms of
   each page are kept, so memory is bounded by the new terms, not the window's;
2. the history (`detector.engine.history`) drops the terms it holds, page by page;
   then the first-seen time of the new terms only, in batches (`first_seen`);
3. the details of the chosen terms, one aggregation per batch (`details`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from detector.engine.history import TermHistory
from detector.es.client import Elastic
from detector.logs import structured
from detector.query import baseline, batched, bodies, skipped
from detector.query.bodies import Plan, WindowTerm
from detector.query.window import TimeFields
from detector.results import NewTerm, Values

log = logging.getLogger(__name__)
_SKIPPED = "skipped"

# New terms per first-seen request: single field, a `terms` aggregation with that many `include`
# values (below `index.max_terms_count` 65,536 and `search.max_buckets` 65,536); several fields,
# that many `filters` buckets.
FIRST_SEEN_SINGLE_BATCH = 10_000
FIRST_SEEN_MULTI_BATCH = 1_000
# From how many new terms the override count pays: below, the two filtered `min`s over the new
# terms cost less than one more request.
OVERRIDE_COUNT_FROM = 1_000
# Chosen terms per phase-3 aggregation (two `filters` buckets each).
DETAILS_BATCH = 500


# Documents whose time field is later than the window's end by more than this are counted as
# "in the future" (a clock a little ahead is common and harmless).
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass
class Found:
    """Phases 1 and 2: how many window terms were read, and the values of the new ones; and
    what phase 1 saw on the way: how many shards it searched (0: no index matched), how many
    of the rule's documents lie in the future, and the window's documents without a term."""

    checked: int = 0
    new: list[Values] = field(default_factory=list)
    shards: int = 0
    future: int = 0
    skipped: skipped.Skipped = field(default_factory=skipped.Skipped)


def new_values(elastic: Elastic, history: TermHistory, plan: Plan) -> Found:
    """Phases 1 and 2: the window's terms the history does not hold."""
    found = Found()
    for page in window_pages(elastic, plan, found):
        found.checked += len(page)
        seen = history.seen(plan, page)
        found.new.extend(values for values in page if values not in seen)
    return found


def window_pages(
    elastic: Elastic, plan: Plan, found: Found | None = None
) -> Iterator[list[Values]]:
    """Phase 1: every composite page of window terms (Kibana stops at its `max_signals`;
    we read all pages so the overflow is known and the oldest terms are alerted first).

    `found`, if given, gets the shards searched, the count of future documents and the
    skipped documents (asked on the first page only: `skipped.skipped_agg`)."""
    after: dict[str, Any] | None = None
    while True:
        future = plan.window.end + FUTURE_TOLERANCE if after is None and found else None
        body = bodies.window_terms(
            plan.base, plan.fields, plan.window, plan.terms_fields, after, future
        )
        if future is not None:
            body["aggs"][_SKIPPED] = skipped.skipped_agg(plan.fields, plan.terms_fields)
        response = elastic.search(plan.index, body, plan.clusters)
        if found is not None and after is None:
            found.shards += int(response.get("_shards", {}).get("total", 0))
            found.future += bodies.parse_future(response)
            answer = response.get("aggregations", {}).get(_SKIPPED)
            found.skipped = skipped.merged(found.skipped, skipped.parse_skipped_agg(answer))
        page = bodies.parse_window_page(response, plan.terms_fields)
        if page.terms:
            yield page.terms
        if page.after is None:
            return
        after = page.after


def first_seen(elastic: Elastic, plan: Plan, new: Sequence[Values]) -> list[WindowTerm]:
    """The new terms with their first-seen time in the window (a term whose documents went
    away since phase 1 is dropped)."""
    if not new:
        return []
    time_aggs = _time_aggs(elastic, plan) if len(new) >= OVERRIDE_COUNT_FROM else plan.fields
    single = len(plan.terms_fields) == 1
    size = FIRST_SEEN_SINGLE_BATCH if single else FIRST_SEEN_MULTI_BATCH
    found: dict[Values, datetime] = {}
    for start in range(0, len(new), size):
        batch = new[start : start + size]
        if single:
            body = batched.first_seen_single(
                plan.base,
                plan.fields,
                plan.window,
                time_aggs,
                plan.terms_fields[0],
                [values[0] for values in batch],
            )
            found.update(batched.parse_first_seen_single(_search(elastic, plan, body)))
        else:
            body = batched.first_seen_multi(
                plan.base, plan.fields, plan.window, time_aggs, plan.terms_fields, batch
            )
            found.update(batched.parse_first_seen_multi(_search(elastic, plan, body), batch))
    return [WindowTerm(values, found[values]) for values in new if values in found]


def _time_aggs(elastic: Elastic, plan: Plan) -> TimeFields:
    """The time field(s) the first-seen `min` needs: the override alone when no window document
    lacks it (one cheap count), else the override and the fallback (Kibana's combined time)."""
    if plan.fields.fallback is None:
        return plan.fields
    body = batched.missing_override(plan.base, plan.fields, plan.window)
    if batched.has_hits(_search(elastic, plan, body)):
        return plan.fields
    return TimeFields(plan.fields.primary)


def _search(elastic: Elastic, plan: Plan, body: dict[str, Any]) -> dict[str, Any]:
    return elastic.search(plan.index, body, plan.clusters)


def details_unseen(elastic: Elastic, plan: Plan, new: Sequence[Values]) -> list[NewTerm]:
    """Phase 3 for new terms that all fit in `max_signals`: their first-seen times come with
    their first documents (`batched.details_unseen`), one request per batch instead of a
    first-seen request and a details request."""
    terms: list[NewTerm] = []
    for start in range(0, len(new), DETAILS_BATCH):
        batch = new[start : start + DETAILS_BATCH]
        body = batched.details_unseen(plan.base, plan.fields, plan.window, plan.terms_fields, batch)
        found = batched.parse_details_unseen(_search(elastic, plan, body), batch)
        if len(found) < len(batch):
            _vanished(set(batch) - {term.values for term in found})
        terms.extend(
            NewTerm(
                term.values,
                term.first_seen,
                term.details.hit or {},
                term.details.event_count,
                term.details.actions,
            )
            for term in found
        )
    return terms


def _vanished(values: set[Values]) -> None:
    # Their documents went away between the phases (deleted or index dropped).
    for combo in values:
        log.warning("new term vanished", extra=structured(values=list(combo)))


def details(elastic: Elastic, plan: Plan, chosen: Sequence[WindowTerm]) -> list[NewTerm]:
    """Phase 3: the first document, event count and actions of each chosen term."""
    terms: list[NewTerm] = []
    for term, answer in zip(chosen, detail_answers(elastic, plan, chosen), strict=True):
        if answer.hit is None:
            # Its documents went away between the phases (deleted or index dropped).
            log.warning("new term vanished", extra=structured(values=list(term.values)))
            continue
        terms.append(
            NewTerm(
                values=term.values,
                first_seen=term.first_seen,
                hit=answer.hit,
                event_count=answer.event_count,
                actions=answer.actions,
            )
        )
    return terms


def detail_answers(
    elastic: Elastic, plan: Plan, chosen: Sequence[WindowTerm]
) -> list[batched.Details]:
    """Phase 3's answer for each chosen term, in order (`hit` None: no document found)."""
    answers: list[batched.Details] = []
    for start in range(0, len(chosen), DETAILS_BATCH):
        batch = chosen[start : start + DETAILS_BATCH]
        body = batched.details(plan.base, plan.fields, plan.window, plan.terms_fields, batch)
        answers.extend(batched.parse_details(_search(elastic, plan, body), len(batch)))
    return answers


def skipped_documents(elastic: Elastic, plan: Plan) -> skipped.Skipped:
    """The window's matching documents that produce no term (`detector.query.skipped`): one
    count."""
    body = skipped.skipped_body(plan.base, plan.fields, plan.window, plan.terms_fields)
    return skipped.parse_skipped(_search(elastic, plan, body))


def oldest_document(elastic: Elastic, plan: Plan) -> datetime | None:
    """How far back the rule's data reaches (`detector.query.baseline`): one `min` aggregation."""
    body = baseline.oldest_body(plan.base, plan.fields, plan.window)
    return baseline.parse_oldest(_search(elastic, plan, body))
