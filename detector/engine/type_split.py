"""Phases 1 to 3 over indices that map a rule's fields differently (`detector.query.type_groups`).

With one group of indices (every field of one type everywhere: the usual case) each function
is exactly the `detector.engine.phases` one, same requests. With several, every phase runs once per
group, on that group's concrete indices, asking it only values its mapping can hold, and the
answers are merged on the canonical form of the terms (`type_groups.canonical`, for the fields
that are `ip` somewhere and something else elsewhere):

- phase 1 reads the window terms of every group before the history is asked, because a
  `keyword` index is searched with the spellings of an address seen in the window (any group),
  so all of them must be known first. Memory then holds the window's terms, not only the new
  ones (the price of a conflicting mapping);
- an `ip` group is asked the canonical address only; a `keyword` group every spelling seen,
  the canonical one and, for IPv6, its upper-case and exploded forms. A keyword history
  holding yet another spelling of an address is not found (documented in the README);
- first-seen times are the minimum over the groups, event counts their sum, actions their
  union, the first document the earliest in phase 3's order (`@timestamp`, index, event id).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from detector import kql
from detector.engine import phases
from detector.engine.field_caps import SHARED, TypeCache
from detector.engine.history import TermHistory
from detector.engine.phases import Found
from detector.errors import DetectorError
from detector.es.client import Elastic
from detector.logs import structured
from detector.query import bodies
from detector.query.batched import Details
from detector.query.bodies import Plan, WindowTerm
from detector.query.clusters import clusters_of, exclusion, with_remotes
from detector.query.type_groups import FieldTypes, Group, canonical, unaggregatable_text
from detector.query.window import Window, time_fields
from detector.results import NewTerm, Values
from detector.rules import Rule
from detector.rules.exceptions import ExceptionList

log = logging.getLogger(__name__)

# The group of a split when no index matched: it holds any value.
_ANY = Group((), {})
# Raw spellings of each canonical term seen in the window.
Spellings = Mapping[Values, set[Values]]


class Asked(NamedTuple):
    """A group of indices asked about some terms: its plan, and each spelling of the terms it
    can hold -> the canonical term."""

    group: Group
    plan: Plan
    spellings: dict[Values, Values]


@dataclass(frozen=True)
class Split:
    """One execution's plan per group of indices, and which fields are compared canonically."""

    whole: Plan
    plans: tuple[Plan, ...]
    groups: tuple[Group, ...]
    canonical_fields: frozenset[int]  # positions in the rule's new_terms_fields

    @property
    def single(self) -> bool:
        """One group: the phases as they are."""
        return len(self.plans) == 1

    def canon(self, values: Values) -> Values:
        """The canonical form of a term."""
        if not self.canonical_fields:
            return values
        return tuple(
            canonical(value) if n in self.canonical_fields else value
            for n, value in enumerate(values)
        )

    def as_found(self, values: Values) -> Values:
        """A term as a user writes it, in the form the phases find it: an address in canonical
        form where a group maps its field `ip` (as an `ip` field's aggregation returns it)."""
        fields = self.whole.terms_fields
        ip = {
            n
            for n, name in enumerate(fields)
            if any(g.kinds.get(name) == "ip" for g in self.groups)
        }
        return tuple(canonical(v) if n in ip else v for n, v in enumerate(values))

    def asked(
        self, group: Group, terms: Sequence[Values], spellings: Spellings
    ) -> dict[Values, Values]:
        """Each spelling of `terms` that `group` can hold -> its canonical term."""
        fields = self.whole.terms_fields
        asked: dict[Values, Values] = {}
        for term in terms:
            per_field = [
                [v for v in self._spellings(group, n, term, spellings) if group.holds(fields[n], v)]
                for n in range(len(fields))
            ]
            for combo in itertools.product(*per_field):
                asked.setdefault(tuple(combo), term)
        return asked

    def _spellings(self, group: Group, n: int, term: Values, spellings: Spellings) -> list[Any]:
        value = term[n]
        if n not in self.canonical_fields:
            return [value]
        if group.kinds.get(self.whole.terms_fields[n]) == "ip":
            return [value]
        seen = {raw[n] for raw in spellings.get(term, ())}
        return list(dict.fromkeys([value, *sorted(seen, key=str), *_ipv6_forms(value)]))


def _ipv6_forms(value: Any) -> list[str]:
    """Other usual spellings of an IPv6 address (upper case, exploded) for keyword indices."""
    if not isinstance(value, str) or ":" not in value:
        return []
    try:
        exploded = ipaddress.IPv6Address(value).exploded
    except ValueError:
        return []
    return [value.upper(), exploded, exploded.upper()]


def split(
    plan: Plan,
    groups: Sequence[Group],
    canonical_fields: frozenset[int],
    bases: Sequence[bodies.Body],
) -> Split:
    """A `Split` of `plan`: one plan per group, searching its indices with its own filter
    (`bases`, in the order of `groups`). No group (no index matched): `plan` alone."""
    if len(groups) <= 1:
        clusters = clusters_of(groups[0].indices) if groups else ()
        only = replace(plan, base=bases[0], clusters=clusters) if bases else plan
        return Split(only, (only,), tuple(groups), frozenset())
    indices = [_largest(plan.rule.index, groups), *(group.indices for group in groups[1:])]
    plans = tuple(
        replace(plan, base=base, indices=names, clusters=clusters_of(group.indices))
        for names, base, group in zip(indices, bases, groups, strict=True)
    )
    return Split(plan, plans, tuple(groups), canonical_fields)


def _largest(patterns: Sequence[str], groups: Sequence[Group]) -> tuple[str, ...]:
    """What the largest group searches: its indices, and the rule's wildcard patterns less the
    other groups' indices, so an index created since `_field_caps` was asked is still searched.

    `-name` excludes only from the wildcards before it (Elasticsearch refuses it after concrete
    names alone), so the wildcards come first, then the exclusions, then the concrete names.
    """
    wildcards = [pattern for pattern in patterns if "*" in pattern]
    if not wildcards:
        return groups[0].indices
    others = [exclusion(name) for group in groups[1:] for name in group.indices]
    return (*wildcards, *others, *groups[0].indices)


def plan_execution(
    elastic: Elastic, rule: Rule, window: Window, exceptions: ExceptionList
) -> Split:
    """The plan of an execution of `rule` over `window`: the filter of every phase (the rule's
    query less its exceptions) and the groups of indices of one type per field. `explain` asks
    through this very plan, so it cannot disagree with an execution.

    The rule's patterns are searched on `DETECTOR_REMOTE_CLUSTERS` as well (`with_remotes`):
    every phase, the baseline, `explain` and `preview` go through this plan."""
    remotes = elastic.settings.remote_clusters
    if remotes:
        rule = replace(rule, index=with_remotes(rule.index, remotes))
    rule_query = kql.to_dsl(rule.query)
    base = bodies.rule_filter(rule_query, exceptions.must_not(rule.rule_id))
    plan = Plan(rule, window, time_fields(rule), base)
    return for_plan(elastic, plan, rule_query, exceptions)


def for_plan(
    elastic: Elastic,
    plan: Plan,
    rule_query: bodies.Body,
    exceptions: ExceptionList,
    cache: TypeCache = SHARED,
) -> Split:
    """`plan` split by the types of the rule's new-terms and exception fields (one cached
    `_field_caps`), each group's filter holding only the exception values it can parse."""
    rule = plan.rule
    fields = tuple(dict.fromkeys([*rule.new_terms_fields, *exceptions.fields(rule.rule_id)]))
    types = cache.field_types(elastic, rule.index, fields)
    _refuse_text(types, rule.new_terms_fields)
    groups = types.groups(fields)
    bases = [
        bodies.rule_filter(rule_query, exceptions.must_not(rule.rule_id, group.holds))
        for group in groups
    ]
    conflicts = types.conflicts(rule.new_terms_fields)
    canonical_fields = frozenset(
        n for n, name in enumerate(rule.new_terms_fields) if "ip" in conflicts.get(name, {})
    )
    return split(plan, groups, canonical_fields, bases)


def _refuse_text(types: FieldTypes, fields: Sequence[str]) -> None:
    """Fail the execution when an index maps a new-terms field `text`, naming the indices and
    the fix. Not skipping those indices instead: a term whose history sits only there would
    alert as new (a false alarm), and their window terms would be lost for good once the window
    moves on; a failed window is retried, then recorded with the backfill that covers it."""
    found = types.unaggregatable(fields)
    if found:
        raise DetectorError("; ".join(unaggregatable_text(*item) for item in found.items()))


class SplitPhases:
    """Phases 1 to 3 of one execution over the groups of a `Split`."""

    def __init__(self, elastic: Elastic, history: TermHistory, split: Split) -> None:
        self.elastic, self.history, self.split = elastic, history, split
        self.spellings: dict[Values, set[Values]] = {}

    def new_values(self) -> Found:
        """Phases 1 and 2 over every group; the new terms in canonical form."""
        split = self.split
        if split.single:
            return phases.new_values(self.elastic, self.history, split.plans[0])
        found = self.read_window()
        terms = list(self.spellings)
        found.checked = len(terms)
        for start in range(0, len(terms), bodies.PAGE_SIZE):
            page = terms[start : start + bodies.PAGE_SIZE]
            seen = self._seen(page)
            found.new.extend(term for term in page if term not in seen)
        return found

    def read_window(self) -> Found:
        """Phase 1 over every group: the spellings of each canonical term in the window (what
        a `keyword` group is asked), and what phase 1 saw on the way. Nothing to read with one
        group (its terms are asked as they are)."""
        found = Found()
        for plan in self.split.plans if not self.split.single else ():
            for page in phases.window_pages(self.elastic, plan, found):
                for values in page:
                    self.spellings.setdefault(self.split.canon(values), set()).add(values)
        return found

    def _seen(self, terms: list[Values]) -> set[Values]:
        seen: set[Values] = set()
        for _, plan, asked in self.per_group(terms):
            found = self.history.seen(plan, list(asked))
            seen.update(asked.get(values, self.split.canon(values)) for values in found)
        return seen

    def per_group(self, terms: Sequence[Values]) -> list[Asked]:
        """Each group that can hold some of `terms` (canonical), with its plan and its
        spellings of them. No index matched: the one plan, asked every term."""
        split, found = self.split, []
        groups = split.groups or (_ANY,)
        for group, plan in zip(groups, split.plans, strict=True):
            asked = split.asked(group, terms, self.spellings)
            if asked:
                found.append(Asked(group, plan, asked))
        return found

    def first_seen(self, new: Sequence[Values]) -> list[WindowTerm]:
        """The first-seen time of each new term: the earliest over the groups."""
        if self.split.single:
            return phases.first_seen(self.elastic, self.split.plans[0], new)
        first: dict[Values, datetime] = {}
        for _, plan, asked in self.per_group(new):
            for term in phases.first_seen(self.elastic, plan, list(asked)):
                canon = asked[term.values]
                first[canon] = min(first.get(canon, term.first_seen), term.first_seen)
        return [WindowTerm(values, first[values]) for values in new if values in first]

    def oldest_document(self) -> datetime | None:
        """How far back the rule's data reaches, over every group."""
        found = [phases.oldest_document(self.elastic, plan) for plan in self.split.plans]
        times = [when for when in found if when is not None]
        return min(times) if times else None

    def details_unseen(self, new: Sequence[Values]) -> list[NewTerm]:
        """Phase 3 with the first-seen times, for new terms that all fit in `max_signals`:
        one request per batch with one group; the first-seen request then phase 3 with more."""
        if self.split.single:
            return phases.details_unseen(self.elastic, self.split.plans[0], new)
        return self.details(self.first_seen(new))

    def details(self, chosen: Sequence[WindowTerm]) -> list[NewTerm]:
        """Phase 3 over every group, merged per canonical term."""
        if self.split.single:
            return phases.details(self.elastic, self.split.plans[0], chosen)
        merged: dict[Values, list[Details]] = {term.values: [] for term in chosen}
        when = {term.values: term.first_seen for term in chosen}
        for _, plan, asked in self.per_group(list(merged)):
            spelled = [WindowTerm(values, when[canon]) for values, canon in asked.items()]
            answers = phases.detail_answers(self.elastic, plan, spelled)
            for term, answer in zip(spelled, answers, strict=True):
                merged[asked[term.values]].append(answer)
        return [term for term in map(self._merge(merged), chosen) if term is not None]

    @staticmethod
    def _merge(merged: Mapping[Values, list[Details]]) -> Callable[[WindowTerm], NewTerm | None]:
        def merge(term: WindowTerm) -> NewTerm | None:
            answers = merged[term.values]
            hits = [answer.hit for answer in answers if answer.hit is not None]
            if not hits:
                log.warning("new term vanished", extra=structured(values=list(term.values)))
                return None
            actions = sorted({action for answer in answers for action in answer.actions})
            return NewTerm(
                values=term.values,
                first_seen=term.first_seen,
                hit=min(hits, key=_document_order),
                event_count=sum(answer.event_count for answer in answers),
                actions=tuple(actions),
            )

        return merge


def _document_order(hit: Mapping[str, Any]) -> tuple[str, str, str]:
    """Phase 3's first-document order (`batch_query.FIRST_DOCUMENT_SORT`) across groups."""
    source = hit.get("_source", {})
    event = source.get("event", {})
    event_id = event.get("id", "") if isinstance(event, Mapping) else ""
    return (str(source.get("@timestamp", "")), str(hit.get("_index", "")), str(event_id))
