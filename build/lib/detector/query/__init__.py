"""What an execution asks Elasticsearch, and how to read the answers. Pure.

No module here talks to Elasticsearch: each builds request bodies from a rule and a time, and
parses the answers `detector.engine` gets back.

- `window`: the time window `[start, end]` of an execution and its history start, and the time
  field(s) it is measured on (`timestamp_override` with Kibana's fallback).
- `bodies`: the `Plan` of one execution (its shared filter) and the bodies of phases 1 and 2.
- `batched`: the bodies that ask about many new terms at once (first-seen times, phase 3).
- `skipped`: window documents that match but produce no term, counted.
- `baseline`: how much of the history window the rule's data covers.
- `type_groups`: indices that map a field with different types, and what each can hold.
"""

from __future__ import annotations

from detector.query.baseline import ALERT, HOLD, Baseline, BaselineCache
from detector.query.bodies import PAGE_SIZE, Plan, WindowTerm, rule_filter, time_range
from detector.query.skipped import Skipped
from detector.query.type_groups import FieldTypes, Group, canonical, describe, holds
from detector.query.window import TimeFields, Window, time_fields, window_for

__all__ = [
    "ALERT",
    "HOLD",
    "PAGE_SIZE",
    "Baseline",
    "BaselineCache",
    "FieldTypes",
    "Group",
    "Plan",
    "Skipped",
    "TimeFields",
    "Window",
    "WindowTerm",
    "canonical",
    "describe",
    "holds",
    "rule_filter",
    "time_fields",
    "time_range",
    "window_for",
]
