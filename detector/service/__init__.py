"""Running the rules: now (`once`), on schedule (`run`), over the past (`backfill`).

- `runner`: `Runner.run_due`: catch-up, the execution log, checkpoints, metrics, sinks.
- `checkpoints`: the one interface of the catch-up to a rule's checkpoint (the execution log's,
  or the fenced one in the lease under `run`).
- `retries`: a failed scheduled window retried within its interval, before the next slot.
- `pool`: the rules of `detector once` on a small thread pool.
- `scheduler`: APScheduler, each rule at its grid slots (`GridTrigger`).
- `replica`: this replica's leases, renewed on a background thread; fenced checkpoints.
- `serve`: `detector run`: the wiring of all of the above.
- `sinks` (pure): the `AlertSink` seam for what created alerts go to.
"""

from __future__ import annotations

from detector.service.pool import run_rules
from detector.service.runner import Runner, backfill
from detector.service.serve import serve, warn_unreadable
from detector.service.sinks import AlertSink, LogSink

__all__ = [
    "AlertSink",
    "LogSink",
    "Runner",
    "backfill",
    "run_rules",
    "serve",
    "warn_unreadable",
]
