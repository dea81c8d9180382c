"""The time window of one rule execution, and the time field(s) it is measured on. Pure.

Kibana computes a tuple `[from, to]` with date math relative to the task's start time, and the
history start relative to the same instant (`NT/utils.ts` `parseDateString` uses
`forceNow = tuple.to`); we do the same with one `now` for all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from detector import datemath
from detector.errors import Location, RuleError
from detector.rules import Rule
from detector.times import as_utc, truncate_ms

TIMESTAMP = "@timestamp"


@dataclass(frozen=True)
class Window:
    """The rule window `[start, end]` and the history `[history_start, start]`, ends inclusive.

    A document stamped exactly `start` belongs to the history: Kibana keeps a term only when its
    first-seen time is strictly greater than `from` (§1.3 of the Kibana notes).
    """

    start: datetime
    end: datetime
    history_start: datetime

    @property
    def history_length(self) -> timedelta:
        """How far back a term must be absent to be new."""
        return self.start - self.history_start


@dataclass(frozen=True)
class TimeFields:
    """The field time is read from, and the field used when a document lacks it.

    Kibana: `primaryTimestamp` is the override or `@timestamp`; `secondaryTimestamp` is
    `@timestamp` only when an override is set, the fallback is not disabled and the override is
    not `@timestamp` itself (`create_security_rule_type_wrapper.ts`).
    """

    primary: str
    fallback: str | None = None


def time_fields(rule: Rule) -> TimeFields:
    """The time field(s) of a rule."""
    override = rule.timestamp_override
    if not override or override == TIMESTAMP:
        return TimeFields(TIMESTAMP)
    if rule.timestamp_override_fallback_disabled:
        return TimeFields(override)
    return TimeFields(override, TIMESTAMP)


def window_for(rule: Rule, now: datetime) -> Window:
    """The window of an execution of `rule` at `now`.

    `now` is truncated to the millisecond: Elasticsearch `date` fields hold milliseconds, so every
    bound is then an exact millisecond and inclusive bounds mean the same here and in
    Elasticsearch. Raises `RuleError` when the history does not reach before the window (Kibana's
    `validateHistoryWindowStart`) or the window is empty.
    """
    instant = truncate_ms(as_utc(now))
    start = truncate_ms(datemath.parse(rule.from_, instant))
    end = truncate_ms(datemath.parse(rule.to, instant))
    history_start = truncate_ms(datemath.parse(rule.history_window_start, instant))
    where = Location(path=rule.source, rule_id=rule.rule_id)
    if start > end:
        raise RuleError(f"the window is empty: from {rule.from_!r} is after to {rule.to!r}", where)
    if history_start >= start:
        raise RuleError(
            f"history_window_start {rule.history_window_start!r} must be earlier than "
            f"from {rule.from_!r} (the history would not reach before the window)",
            where,
        )
    return Window(start=start, end=end, history_start=history_start)
