"""A preview's requests: the terms' time spans over the whole range, the oldest document, and
phase 3 of the would-be alerts only. Reads through `detector.es.Elastic`; writes nothing.

Instead of the range's executions one by one (a backfill: several requests each), a few
composite pages give every term's spans (`detector.preview.requests.spans`), and
`detector.preview.simulation` derives the executions from them in memory. The filter, the time
fields and the groups of indices are the engine's own plan (`type_split.plan_execution`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from detector.alerts.document import term_key
from detector.datemath import parse_interval
from detector.engine import phases, type_split
from detector.engine.history import default_history
from detector.errors import Location, RuleError
from detector.es.client import Elastic
from detector.preview import requests, simulation
from detector.preview.report import Alert, Executed, Preview
from detector.preview.simulation import Slot, Span, WouldBe
from detector.query.baseline import ALERT
from detector.query.batched import Details, parse_details
from detector.query.bodies import Plan, WindowTerm
from detector.query.window import window_for
from detector.results import Values
from detector.rules import Rule
from detector.rules.exceptions import NO_EXCEPTIONS, ExceptionList
from detector.schedule.catchup import backfill_times
from detector.times import as_utc

# Would-be alerts per phase-3 aggregation (two `filters` buckets each), as the engine's.
DETAILS_BATCH = phases.DETAILS_BATCH


def preview(
    elastic: Elastic,
    rule: Rule,
    start: datetime,
    end: datetime,
    *,
    exceptions: ExceptionList = NO_EXCEPTIONS,
    baseline_mode: str = ALERT,
    alerts_index: str | None = None,
) -> Preview:
    """What `rule` would have alerted over `[start, end]`: the executions a backfill of that
    range runs (`start, start + interval, ... <= end`), replayed in memory.

    With `alerts_index`, the rule's alerts already there count as a backfill counts them (an
    alert suppresses its term's episode; it is not written again); without, the preview
    starts from a clean slate (what the rule alerts on its own: `rules diff`)."""
    found = Preview(rule.rule_id, rule.name, as_utc(start), as_utc(end))
    nows = backfill_times(as_utc(start), as_utc(end), parse_interval(rule.interval))
    if not nows:
        return found
    slots = [Slot(now, window_for(rule, now)) for now in nows]
    if not simulation.monotonic(slots):
        where = Location(path=rule.source, rule_id=rule.rule_id)
        raise RuleError("its windows do not move forward with time: no preview", where)
    split = type_split.plan_execution(elastic, rule, slots[-1].window, exceptions)
    settings = simulation.Settings(
        rule.max_signals, rule.baseline or baseline_mode, _oldest(elastic, split)
    )
    spans = term_spans(elastic, split, slots)
    prior = _prior(elastic, alerts_index, rule, slots, spans) if alerts_index else None
    replayed = simulation.replay(slots, spans, settings, prior)
    found.executions = [
        Executed(slot.now, tally) for slot, tally in zip(slots, replayed.tallies, strict=True)
    ]
    found.alerts = _with_details(elastic, split, slots, replayed)
    return found


def term_spans(
    elastic: Elastic, split: type_split.Split, slots: Sequence[Slot]
) -> dict[Values, list[Span]]:
    """Every term's spans over the range, per bucket of time (canonical terms across groups)."""
    windows = [slot.window for slot in slots]
    width = requests.bucket_width(windows)
    reach = (min(w.history_start for w in windows), max(w.end for w in windows))
    merged: requests.Bucketed = {}
    for plan in split.plans:
        bucketed: requests.Bucketed = {}
        for time_field in (plan.fields.primary, plan.fields.fallback):
            if time_field is not None:
                _read_spans(elastic, plan, time_field, (reach, width), bucketed)
        for (values, bucket), (first, last) in bucketed.items():
            key = (split.canon(values), bucket)
            known = merged.get(key)
            merged[key] = (
                (first, last) if known is None else (min(known[0], first), max(known[1], last))
            )
    spans: dict[Values, list[tuple[int, Span]]] = {}
    for (values, bucket), (first, last) in merged.items():
        spans.setdefault(values, []).append((bucket, Span(first, last)))
    return {values: [span for _, span in sorted(found)] for values, found in spans.items()}


def _read_spans(
    elastic: Elastic,
    plan: Plan,
    time_field: str,
    extent: tuple[tuple[datetime, datetime], Any],
    into: requests.Bucketed,
) -> None:
    (reach, width), after = extent, None
    while True:
        body = requests.spans(
            plan.base, plan.fields, time_field, reach, plan.terms_fields, width, after
        )
        after = requests.parse_spans(
            elastic.search(plan.index, body, plan.clusters), plan.terms_fields, into
        )
        if after is None:
            return


def _prior(
    elastic: Elastic, index: str, rule: Rule, slots: Sequence[Slot], spans: dict[Values, list[Span]]
) -> dict[Values, list[datetime]]:
    """The first-seen times of the rule's alerts already written, per term of the range, that
    can be in the episode of a would-be alert (within a history length of the range)."""
    longest = max(slot.window.history_length for slot in slots)
    reach = (slots[0].window.history_start - longest, slots[-1].window.end + longest)
    by_key: dict[str, list[datetime]] = {}
    after = None
    while True:
        body = requests.prior_alerts(rule.rule_id, reach, after)
        after = requests.parse_prior_alerts(elastic.search([index], body), by_key)
        if after is None:
            break
    if not by_key:
        return {}
    return {values: by_key[key] for values in spans if (key := term_key(rule, values)) in by_key}


def _oldest(elastic: Elastic, split: type_split.Split) -> datetime | None:
    """The oldest document matching the rule up to the range's last window end (the baseline
    each execution asks for, `detector.query.baseline`: one `min` per group)."""
    found = [phases.oldest_document(elastic, plan) for plan in split.plans]
    times = [when for when in found if when is not None]
    return min(times) if times else None


def _with_details(
    elastic: Elastic,
    split: type_split.Split,
    slots: Sequence[Slot],
    replayed: simulation.Replay,
) -> list[Alert]:
    """The would-be alerts with their phase-3 details (batched across executions)."""
    would_be = replayed.alerts
    if split.single:
        answers = _batched_details(elastic, split.plans[0], slots, would_be)
    else:
        answers = _per_execution_details(elastic, split, slots, would_be)
    rule = split.whole.rule
    alerts = []
    for item, answer in zip(would_be, answers, strict=True):
        slot = slots[item.execution]
        hit = answer.hit
        alerts.append(
            Alert(
                rule_id=rule.rule_id,
                fields=rule.new_terms_fields,
                values=item.values,
                first_seen=item.first_seen,
                execution=slot.now,
                window=slot.window,
                event_count=answer.event_count,
                actions=answer.actions,
                document=(str(hit.get("_index")), str(hit.get("_id"))) if hit else None,
                overflow_carried=item.overflow_carried,
                baseline_coverage=_coverage(replayed.tallies[item.execution]),
            )
        )
    return alerts


def _coverage(tally: simulation.Tally) -> float:
    return tally.baseline.coverage if tally.baseline is not None else 1.0


def _batched_details(
    elastic: Elastic, plan: Plan, slots: Sequence[Slot], would_be: Sequence[WouldBe]
) -> list[Details]:
    answers: list[Details] = []
    for start in range(0, len(would_be), DETAILS_BATCH):
        batch = would_be[start : start + DETAILS_BATCH]
        asked = [(item.values, item.first_seen, slots[item.execution].window) for item in batch]
        body = requests.details(plan.base, plan.fields, plan.terms_fields, asked)
        answers.extend(parse_details(elastic.search(plan.index, body, plan.clusters), len(batch)))
    return answers


def _per_execution_details(
    elastic: Elastic, split: type_split.Split, slots: Sequence[Slot], would_be: Sequence[WouldBe]
) -> list[Details]:
    """Indices mapping a field differently: phase 3 as the engine merges it over the groups,
    one execution at a time."""
    by_execution: dict[int, list[WouldBe]] = {}
    for item in would_be:
        by_execution.setdefault(item.execution, []).append(item)
    answers: dict[tuple[Values, int], Details] = {}
    for position, items in by_execution.items():
        window = slots[position].window
        moved = dataclasses.replace(
            split,
            whole=dataclasses.replace(split.whole, window=window),
            plans=tuple(dataclasses.replace(plan, window=window) for plan in split.plans),
        )
        run = type_split.SplitPhases(elastic, default_history(elastic), moved)
        chosen = [WindowTerm(item.values, item.first_seen) for item in items]
        for term in run.details(chosen):
            answers[(term.values, position)] = Details(
                dict(term.hit), term.event_count, term.actions
            )
    empty = Details(None, 0, ())
    return [answers.get((item.values, item.execution), empty) for item in would_be]
