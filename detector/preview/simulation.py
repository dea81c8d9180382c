"""Which execution of a past range would alert which term, derived in memory. Pure.

The input is, per term, where its documents lie in time: one `Span` (first and last time) per
bucket of a fixed width no longer than the shortest history of the range's executions. The
engine's rule (§1.3 of the Kibana notes, `detector.query.window`): a term is new at an execution
when a document holds it in `(start, end]` and none in `[history_start, start]`. Between two
documents of one bucket there is less than a history length, so the second never starts
newness; a term can only become new at the first time `t` of a bucket, and then exactly for the
executions with `start < t <= end` and `history_start >` the last time `p` of the bucket before
(no history in between). Windows move forward with `now`, so those executions are one run of
consecutive ones, found by bisection.

Then the executions are replayed in order as `detector.engine.execution` runs them: new terms
oldest first (values breaking ties), those alerted in the same episode dropped (an alert of the
term whose first-seen time is within the execution's history length: the alerts index's
`already_alerted`, kept here in a dict), at most `max_signals` alerted, the rest carried over;
an execution whose baseline holds (`detector.query.baseline`) alerts nothing.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from detector.query.baseline import ALERT, Baseline
from detector.query.window import Window
from detector.results import Values


@dataclass(frozen=True)
class Span:
    """A term's documents in one time bucket: the first and the last time."""

    first: datetime
    last: datetime


@dataclass(frozen=True)
class Slot:
    """One execution of the range: its `now` and its window."""

    now: datetime
    window: Window


@dataclass(frozen=True)
class WouldBe:
    """A would-be alert: the term, its first-seen time, the execution (index in the slots)
    that writes it, and how many executions before it left it over beyond `max_signals`."""

    values: Values
    first_seen: datetime
    execution: int
    overflow_carried: int = 0


@dataclass
class Tally:
    """What one execution would do: new terms, alerts, duplicates, overflow, held terms."""

    new_terms: int = 0
    alerts: int = 0
    duplicates: int = 0
    overflow: int = 0
    held: int = 0
    baseline: Baseline | None = None


@dataclass
class Replay:
    """The would-be alerts of a range, oldest execution first, and each execution's tally."""

    alerts: list[WouldBe] = field(default_factory=list)
    tallies: list[Tally] = field(default_factory=list)


Candidate = tuple[datetime, Values]


def candidates(
    slots: Sequence[Slot], spans: Mapping[Values, Sequence[Span]]
) -> list[list[Candidate]]:
    """Per execution, its new terms with their first-seen time (unordered)."""
    starts = [slot.window.start for slot in slots]
    ends = [slot.window.end for slot in slots]
    history = [slot.window.history_start for slot in slots]
    found: list[list[Candidate]] = [[] for _ in slots]
    for values, buckets in spans.items():
        previous: datetime | None = None
        for span in buckets:
            low = bisect.bisect_left(ends, span.first)
            if previous is not None:
                low = max(low, bisect.bisect_right(history, previous))
            for position in range(low, bisect.bisect_left(starts, span.first)):
                found[position].append((span.first, values))
            previous = span.last
    return found


def sortable(values: Values) -> tuple[tuple[bool, Any], ...]:
    """The engine's tie-break on values: strings and numbers never compare, so kind first."""
    return tuple((isinstance(value, str), value) for value in values)


@dataclass(frozen=True)
class Settings:
    """What the replay needs of the rule besides its windows."""

    max_signals: int
    baseline_mode: str = ALERT
    # The oldest document matching the rule (up to the range's last window end); None: none.
    oldest: datetime | None = None


def replay(
    slots: Sequence[Slot],
    spans: Mapping[Values, Sequence[Span]],
    settings: Settings,
    prior: Mapping[Values, Sequence[datetime]] | None = None,
) -> Replay:
    """The executions of `slots` replayed in order over the terms' `spans`; `prior`: the
    first-seen times of the alerts already written per term (they suppress their episode)."""
    found = Replay()
    alerted: dict[Values, list[datetime]] = {
        values: list(times) for values, times in (prior or {}).items()
    }
    carried: dict[Candidate, int] = {}
    for position, (slot, new) in enumerate(zip(slots, candidates(slots, spans), strict=True)):
        window = slot.window
        since = settings.oldest if _reaches(settings.oldest, window) else None
        baseline = Baseline(since, window.history_start, window.start, settings.baseline_mode)
        ordered = sorted(new, key=lambda item: (item[0], sortable(item[1])))
        limit = window.history_length
        fresh = [
            item
            for item in ordered
            if not any(abs(item[0] - seen) <= limit for seen in alerted.get(item[1], ()))
        ]
        tally = Tally(len(new), duplicates=len(ordered) - len(fresh), baseline=baseline)
        found.tallies.append(tally)
        if baseline.holding:
            tally.held = len(fresh)
            continue
        chosen, rest = fresh[: settings.max_signals], fresh[settings.max_signals :]
        for first_seen, values in chosen:
            alerted.setdefault(values, []).append(first_seen)
            left = carried.pop((first_seen, values), 0)
            found.alerts.append(WouldBe(values, first_seen, position, left))
        for item in rest:
            carried[item] = carried.get(item, 0) + 1
        tally.alerts, tally.overflow = len(chosen), len(rest)
    return found


def _reaches(oldest: datetime | None, window: Window) -> bool:
    # The baseline's oldest document is asked up to the window's end.
    return oldest is not None and oldest <= window.end


def monotonic(slots: Sequence[Slot]) -> bool:
    """Whether the windows move forward with `now` (what the bisection relies on)."""
    pairs = itertools.pairwise(slots)
    return all(
        a.window.start <= b.window.start
        and a.window.end <= b.window.end
        and a.window.history_start <= b.window.history_start
        for a, b in pairs
    )
