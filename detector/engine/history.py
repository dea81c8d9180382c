"""Phase 2 of an execution: which of the window's terms the history already holds.

`TermHistory` is the seam: the engine asks it, page after page of window terms, for the subset
that occurs in `[history_start, window start]` (both ends inclusive) under the rule's query and
exceptions. `AggregationHistory` is Kibana's V1 method without scripts: for one field a `terms`
filter plus a `terms` aggregation with an explicit `include` list, which counts every listed
value present however many documents hold it; for several fields, batches of combinations as
`should` clauses, each paged through a composite aggregation, halved on clause limits as Kibana
does (`NT/multi_terms_composite.ts`). Another strategy plugs in behind the same Protocol and is
compared with this one on the real node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from detector.errors import RequestError
from detector.es.client import Elastic
from detector.logs import structured
from detector.query import bodies
from detector.query.bodies import Body, Plan
from detector.query.window import TimeFields, Window
from detector.results import Values

log = logging.getLogger(__name__)

# A multi-field history search: (base, time fields, window, fields, combinations, after key).
_HistoryBody = Callable[
    [Body, TimeFields, Window, Sequence[str], Sequence[Values], Mapping[str, Any] | None], Body
]
# Messages of the errors Kibana halves its multi-field batch on (`multi_terms_composite.ts`).
_CLAUSE_ERRORS = ("too_many_nested_clauses", "too_many_clauses", "failed to create query")


class TermHistory(Protocol):
    """Answers which window terms were already seen in the history."""

    def seen(self, plan: Plan, values: Sequence[Values]) -> set[Values]:
        """The subset of `values` that occurs in `[history_start, start]`."""
        ...


class AggregationHistory:
    """The exact check with aggregations (Kibana's V1 pattern, without Painless)."""

    def __init__(self, elastic: Elastic) -> None:
        self.elastic = elastic

    def seen(self, plan: Plan, values: Sequence[Values]) -> set[Values]:
        """The subset of `values` that occurs in `[history_start, start]`."""
        if not values:
            return set()
        if len(plan.terms_fields) == 1:
            return self._seen_single(plan, [value[0] for value in values])
        return self._seen_multi(plan, list(values))

    def _seen_single(self, plan: Plan, singles: list[Any]) -> set[Values]:
        body = bodies.history_single(
            plan.base, plan.fields, plan.window, plan.terms_fields[0], singles
        )
        keys = bodies.parse_history_single(self.elastic.search(plan.index, body, plan.clusters))
        return {(key,) for key in keys}

    def _seen_multi(self, plan: Plan, values: list[Values]) -> set[Values]:
        """Batches of combinations, halved when the query has too many clauses (as Kibana)."""
        seen: set[Values] = set()
        size, position = bodies.BATCH_SIZE, 0
        while position < len(values):
            batch = values[position : position + size]
            try:
                seen |= self._seen_batch(plan, batch)
            except RequestError as exc:
                if size == 1 or not any(marker in str(exc) for marker in _CLAUSE_ERRORS):
                    raise
                size //= 2
                log.warning("halving the history batch", extra=structured(batch_size=size))
                continue
            position += len(batch)
        return seen

    def _seen_batch(self, plan: Plan, batch: list[Values]) -> set[Values]:
        return self._paged(plan, batch, bodies.history_multi)

    def _paged(self, plan: Plan, values: list[Values], build: _HistoryBody) -> set[Values]:
        """Every composite page of `build`'s history search, kept to `values`: array-valued
        documents (and a superset search) add combinations outside them."""
        wanted, seen = set(values), set[Values]()
        after: dict[str, Any] | None = None
        while True:
            body = build(plan.base, plan.fields, plan.window, plan.terms_fields, values, after)
            combos, after = bodies.parse_history_multi(
                self.elastic.search(plan.index, body, plan.clusters), plan.terms_fields
            )
            seen.update(combo for combo in combos if combo in wanted)
            if after is None:
                return seen


class SupersetHistory(AggregationHistory):
    """Several fields without Kibana's `should` batches: one composite over the history under a
    `terms` filter per field (a superset of the page's combinations), intersected with them.

    One field is answered as `AggregationHistory` does. The engine's default for multi-field
    rules; `tests/integration/test_history_superset.py` proves it equal to the batch method.
    """

    def _seen_multi(self, plan: Plan, values: list[Values]) -> set[Values]:
        return self._paged(plan, values, bodies.history_superset)


def default_history(elastic: Elastic) -> TermHistory:
    """The engine's history strategy: exact, and the cheapest measured for one and several
    fields (bench/bench_engine.py)."""
    return SupersetHistory(elastic)
