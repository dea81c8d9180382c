"""When executions run, and by which replica. Pure.

- `catchup`: the executions due after a checkpoint (on the rule's grid), and the gaps.
- `leases`: one lease per rule, so replicas share the rules (decisions and documents).
- `failed_windows`: windows given up after repeated failures, and checkpoints ahead of the clock.
"""

from __future__ import annotations

from detector.schedule.catchup import (
    Due,
    Gap,
    backfill_plan,
    backfill_times,
    default_tolerance,
    due_executions,
    leaves_no_hole,
)
from detector.schedule.failed_windows import FailedWindow, Skew, covered, is_skewed
from detector.schedule.leases import Lease, Version, grid_floor

__all__ = [
    "Due",
    "FailedWindow",
    "Gap",
    "Lease",
    "Skew",
    "Version",
    "backfill_plan",
    "backfill_times",
    "covered",
    "default_tolerance",
    "due_executions",
    "grid_floor",
    "is_skewed",
    "leaves_no_hole",
]
