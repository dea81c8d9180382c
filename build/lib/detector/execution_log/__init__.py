"""The execution-log index: what every execution did, and what the replicas share.

- `documents` (pure): one document per execution, and the status of each.
- `store`: the execution documents and each rule's checkpoint.
- `records`: what the log says across executions: attempts of a window, failed windows, the
  last execution that really ran, executions left `running` by a killed process.
- `guard`: the run-level guards built on the records (give a window up, distrust a checkpoint
  ahead of the clock, clear failed windows a backfill covered).
- `lease_store`: the lease and heartbeat documents (conditional writes).
- `health` (pure) and `status`: `detector health` and `detector status`.
"""

from __future__ import annotations

from detector.execution_log.health import RuleRuns, problem
from detector.execution_log.lease_store import LeaseStore
from detector.execution_log.records import RunRecords, health_runs
from detector.execution_log.status import RuleStatus, table
from detector.execution_log.store import ExecutionStore

__all__ = [
    "ExecutionStore",
    "LeaseStore",
    "RuleRuns",
    "RuleStatus",
    "RunRecords",
    "health_runs",
    "problem",
    "table",
]
