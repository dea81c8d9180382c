"""The preview's replay of a range (`detector.preview.simulation`) against a naive one that
decides every execution from every document time, as the engine does one execution at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from detector.errors import RuleError
from detector.preview.diff import compare
from detector.preview.report import Alert, Preview
from detector.preview.requests import bucket_width
from detector.preview.simulation import Settings, Slot, Span, WouldBe, candidates, replay
from detector.query.baseline import HOLD, Baseline
from detector.query.window import Window, window_for
from tests.support.rules import make_rule

T0 = datetime(2025, 1, 15, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
Times = Mapping[tuple[str], Sequence[datetime]]


def slots(runs: int, every: int = 5, lookback: int = 9, history: int = 60) -> list[Slot]:
    """`runs` executions from T0, every `every` minutes, windows and histories in minutes:
    the engine's own windows (`window_for`), so only a rule that can run is replayed."""
    rule = make_rule(from_=f"now-{lookback}m", history_window_start=f"now-{history}m")
    nows = [T0 + n * every * MINUTE for n in range(runs)]
    return [Slot(now, window_for(rule, now)) for now in nows]


def spans_of(times: Times, width: timedelta) -> dict[tuple[str], list[Span]]:
    """Each term's spans per bucket of `width` since the epoch (Elasticsearch's fixed_interval)."""
    found: dict[tuple[str], list[Span]] = {}
    for values, moments in times.items():
        buckets: dict[int, list[datetime]] = {}
        for moment in moments:
            buckets.setdefault((moment - EPOCH) // width, []).append(moment)
        found[values] = [Span(min(b), max(b)) for _, b in sorted(buckets.items())]
    return found


def naive(ran: Sequence[Slot], times: Times, known: Settings) -> list[WouldBe]:
    """Every execution decided from every time: new when in `[start, end]` and not in
    `[history_start, start]`, then the engine's order, episode dedup, max_signals, baseline."""
    alerted: dict[tuple[str], list[datetime]] = {}
    found = []
    for position, slot in enumerate(ran):
        window = slot.window
        new = []
        for values, moments in times.items():
            inside = [t for t in moments if window.start <= t <= window.end]
            if inside and not any(window.history_start <= t <= window.start for t in moments):
                new.append((min(inside), values))
        new.sort()
        fresh = [
            (t, v)
            for t, v in new
            if not any(abs(t - a) <= window.history_length for a in alerted.get(v, []))
        ]
        since = known.oldest if known.oldest and known.oldest <= window.end else None
        if Baseline(since, window.history_start, window.start, known.baseline_mode).holding:
            continue
        for t, values in fresh[: known.max_signals]:
            alerted.setdefault(values, []).append(t)
            found.append(WouldBe(values, t, position))
    return found


def without_carry(alerts: Sequence[WouldBe]) -> list[tuple[tuple[object, ...], datetime, int]]:
    return [(a.values, a.first_seen, a.execution) for a in alerts]


def test_a_term_back_after_a_whole_history_without_it_is_new_again() -> None:
    ran = slots(30)
    times = {("a",): [T0 - 55 * MINUTE, T0 + 12 * MINUTE, T0 + 80 * MINUTE]}

    found = replay(ran, spans_of(times, bucket_width([s.window for s in ran])), Settings(10))

    # +12: seen 67 min before (history 60 min): new; +80: seen 68 min before: new again.
    assert [(a.first_seen, ran[a.execution].now) for a in found.alerts] == [
        (T0 + 12 * MINUTE, T0 + 15 * MINUTE),
        (T0 + 80 * MINUTE, T0 + 80 * MINUTE),
    ]


def test_a_document_exactly_at_the_window_start_is_history() -> None:
    ran = slots(3)
    times = {("a",): [T0 - 4 * MINUTE, T0 + 1 * MINUTE]}  # -4 is the start of the window at +5

    found = replay(ran, spans_of(times, timedelta(hours=1)), Settings(10))

    assert [(a.first_seen, a.execution) for a in found.alerts] == [(T0 - 4 * MINUTE, 0)]


def test_overflow_is_carried_while_the_window_still_holds_the_term() -> None:
    ran = slots(4, lookback=16)
    times = {(f"t{n}",): [T0 - MINUTE + n * timedelta(seconds=1)] for n in range(5)}

    found = replay(ran, spans_of(times, timedelta(hours=1)), Settings(2))

    assert [(a.values, a.execution, a.overflow_carried) for a in found.alerts] == [
        (("t0",), 0, 0),
        (("t1",), 0, 0),
        (("t2",), 1, 1),
        (("t3",), 1, 1),
        (("t4",), 2, 2),
    ]
    assert [tally.overflow for tally in found.tallies] == [3, 1, 0, 0]


def test_a_holding_baseline_alerts_nothing_and_records_nothing() -> None:
    ran = slots(6, lookback=16)
    times = {("a",): [T0 + 9 * MINUTE]}
    oldest = T0 - 40 * MINUTE  # history reaches it from +20 (history_start = now - 60)

    held = replay(ran, spans_of(times, timedelta(hours=1)), Settings(10, HOLD, oldest))

    assert [(a.values, a.execution) for a in held.alerts] == [(("a",), 4)]
    assert [tally.held for tally in held.tallies] == [0, 0, 1, 1, 0, 0]


def test_a_history_not_reaching_before_the_window_is_no_rule_to_replay() -> None:
    # Hypothesis once drew this (lookback 21 min, history 20): the naive model then saw a
    # document at a window's start as new (the history `[start + 1m, start]` is empty) and
    # never dedup'ed (a history length of -1 min). The engine refuses such a rule, as Kibana's
    # `validateHistoryWindowStart` does: it does not load, and an execution fails before any
    # search, so neither a backfill nor a preview alerts anything for it.
    with pytest.raises(RuleError, match="must be earlier than from"):
        slots(40, every=6, lookback=21, history=20)


def test_candidates_cover_exactly_the_executions_that_see_the_term_new() -> None:
    ran = slots(5, lookback=16)
    found = candidates(ran, {("a",): [Span(T0 + 2 * MINUTE, T0 + 3 * MINUTE)]})

    assert [len(per) for per in found] == [0, 1, 1, 1, 0]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from("abcdefg"),
        st.lists(st.integers(-130, 200), min_size=1, max_size=6),
        min_size=1,
        max_size=7,
    ),
    st.integers(1, 10),
    st.integers(0, 15),
    st.integers(20, 90),
    st.integers(1, 3),
    st.sampled_from(["alert", "hold"]),
    st.integers(-150, 60),
)
# A document exactly at the start of a later window, with the shortest history a rule may have.
@example(minutes={"a": [15]}, every=6, extra=15, history=22, max_signals=1, mode="alert", oldest=0)
def test_the_replay_equals_the_naive_one_execution_at_a_time(
    minutes: dict[str, list[int]],
    every: int,
    extra: int,
    history: int,
    max_signals: int,
    mode: str,
    oldest: int,
) -> None:
    assume(history > every + extra)  # the history must reach before the window (no rule else)
    ran = slots(40, every=every, lookback=every + extra, history=history)
    times = {(name,): [T0 + m * MINUTE for m in ms] for name, ms in minutes.items()}
    known = Settings(max_signals, mode, T0 + oldest * MINUTE)

    found = replay(ran, spans_of(times, bucket_width([s.window for s in ran])), known)

    assert without_carry(found.alerts) == without_carry(naive(ran, times, known))


def alert(term: str, first_seen: datetime) -> Alert:
    window = Window(first_seen, first_seen, first_seen - MINUTE)
    return Alert("r", ("source.address",), (term,), first_seen, first_seen, window)


def test_a_diff_names_the_alerts_added_and_removed() -> None:
    old = Preview("r", "rule", T0, T0, [alert("a", T0), alert("b", T0)])
    new = Preview("r", "rule", T0, T0, [alert("b", T0), alert("c", T0), alert("a", T0 + MINUTE)])

    found = compare(old, new)

    assert [a.values for a in found.added] == [("c",), ("a",)]
    assert [a.values for a in found.removed] == [("a",)]
    assert found.unchanged == 1
    assert found.summary() == "diff: 2 added, 1 removed, 1 unchanged (2 before, 3 after)"
    assert [change["change"] for change in found.to_json()] == ["added", "added", "removed"]
