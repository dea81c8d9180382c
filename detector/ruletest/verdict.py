"""What a case's executions alerted against what it expects: PASS or FAIL, and why. Pure.

A term's values are compared as text (`kibana.alert.new_terms` holds an address as a string,
a number as a number; the fixture may write either), so `64500` and `"64500"` are one term.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from detector.errors import FixtureError, Location
from detector.rules import Rule
from detector.ruletest.fixture import Case, Event, Fixture, Term, values_at

PASS, FAIL, ERROR = "PASS", "FAIL", "ERROR"


@dataclass(frozen=True)
class RunOutcome:
    """One execution of a case: when, the terms whose alerts it created, its status."""

    at: datetime
    alerted: tuple[Term, ...] = ()
    status: str = "succeeded"
    error: str | None = None


@dataclass(frozen=True)
class Difference:
    """A term that alerted against the case's expectation, or did not alert as expected."""

    kind: str  # "missing" (expected to alert) or "unexpected" (alerted, expected not to)
    term: Term
    run: datetime | None  # None: over all the case's runs
    events: tuple[Event, ...] = ()  # the case's events holding the term


@dataclass(frozen=True)
class CaseResult:
    """One case, run: its executions, and what differs from its expectations."""

    fixture: Path
    rule_id: str
    case: Case
    runs: tuple[RunOutcome, ...] = ()
    differences: tuple[Difference, ...] = ()
    error: str | None = None  # the case could not run, or an execution failed
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """PASS, FAIL (a difference) or ERROR (it could not run, or an execution failed)."""
        if self.error is not None:
            return ERROR
        return FAIL if self.differences else PASS


@dataclass(frozen=True)
class Suite:
    """Every case of one `rules test` invocation, and the files that did not load."""

    results: list[CaseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall clock of the whole run (cases run side by side)

    @property
    def passed(self) -> int:
        """How many cases passed."""
        return sum(result.status == PASS for result in self.results)


def check_fit(fixture: Fixture, rule: Rule, minimum_sides: bool) -> None:
    """`FixtureError` when the fixture does not fit its rule: a term with the wrong number of
    values, an event in an index the rule does not read, or (with `minimum_sides`) no alerting
    or no silent case."""
    for case in fixture.cases:
        for term in _all_terms(case):
            if len(term) != len(rule.new_terms_fields):
                raise _error(
                    fixture,
                    case,
                    f"term {list(term)} has {len(term)} value(s); the "
                    f"rule's new-terms fields are {list(rule.new_terms_fields)}",
                )
        for event in case.events:
            if event.index is not None and event.index not in rule.index:
                raise _error(
                    fixture,
                    case,
                    f"event index {event.index!r} is not one of the "
                    f"rule's index patterns {list(rule.index)}",
                    event.line,
                )
    if minimum_sides:
        _check_sides(fixture)


def compare(
    case: Case, runs: Sequence[RunOutcome], fields: Sequence[str]
) -> tuple[Difference, ...]:
    """The differences between what the runs alerted and what the case expects."""
    found: list[Difference] = []
    overall = {_key(term) for run in runs for term in run.alerted}
    if case.alert or case.silent:
        found += _differ(case, overall, case.alert, case.silent, None, fields)
    for expected, run in zip(case.runs, runs, strict=False):
        if expected.alert is None and expected.silent is None:
            continue
        alerted = {_key(term) for term in run.alerted}
        found += _differ(case, alerted, expected.alert or (), expected.silent or (), run.at, fields)
    return tuple(found)


def _differ(
    case: Case,
    alerted: set[tuple[str, ...]],
    alert: Sequence[Term],
    silent: Sequence[Term],
    at: datetime | None,
    fields: Sequence[str],
) -> list[Difference]:
    expected = {_key(term): term for term in alert}
    missing = [term for key, term in expected.items() if key not in alerted]
    # With `alert` given, exactly those alert; `silent` alone names the ones that must not.
    unwanted = alerted - set(expected) if alert else alerted & {_key(t) for t in silent}
    unexpected = [tuple(key) for key in sorted(unwanted)]
    return [
        Difference(kind, term, at, _holding(case, term, fields))
        for kind, terms in (("missing", missing), ("unexpected", unexpected))
        for term in terms
    ]


def _holding(case: Case, term: Term, fields: Sequence[str]) -> tuple[Event, ...]:
    """The case's events whose new-terms fields hold the term (the documents that matter)."""
    key = _key(term)
    return tuple(
        event
        for event in case.events
        if all(
            key[n] in {_text(value) for value in values_at(event.doc, name)}
            for n, name in enumerate(fields)
        )
    )


def _key(term: Sequence[object]) -> tuple[str, ...]:
    return tuple(_text(value) for value in term)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _all_terms(case: Case) -> list[Term]:
    terms = [*case.alert, *case.silent]
    for run in case.runs:
        terms += [*(run.alert or ()), *(run.silent or ())]
    return terms


def _check_sides(fixture: Fixture) -> None:
    if not any(case.alerting for case in fixture.cases):
        raise FixtureError(
            "no alerting case (a case with `alert` terms); --allow-one-sided accepts it",
            Location(fixture.path),
        )
    if not any(case.silencing for case in fixture.cases):
        raise FixtureError(
            "no silent case (a case with `silent` terms); --allow-one-sided accepts it",
            Location(fixture.path),
        )


def _error(fixture: Fixture, case: Case, message: str, line: int | None = None) -> FixtureError:
    return FixtureError(message, Location(fixture.path, line=line or case.line), case.name)
