"""One execution of one new_terms rule: the requests of its three phases, and its alerts.

- `execution`: `execute(rule, now, ...)`: window, phases 1-3, dedup, `max_signals`, the write.
- `phases`: the requests of phases 1 to 3 (bodies from `detector.query`).
- `type_split`: the phases run once per group of indices that map a field with one type.
- `field_caps`: the mapping types of a rule's fields (`_field_caps`), cached briefly.
- `history`: phase 2 behind the `TermHistory` seam (Kibana's batches, or one superset).
"""

from __future__ import annotations

from detector.engine.execution import AlertWriter, execute
from detector.engine.field_caps import TypeCache
from detector.engine.history import (
    AggregationHistory,
    SupersetHistory,
    TermHistory,
    default_history,
)

__all__ = [
    "AggregationHistory",
    "AlertWriter",
    "SupersetHistory",
    "TermHistory",
    "TypeCache",
    "default_history",
    "execute",
]
