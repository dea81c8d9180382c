"""Preview: what a rule would have alerted over a past range, writing nothing; and the diff of
two versions of a rule over one range.

- `simulation` (pure): the range's executions replayed in memory from each term's time spans:
  windows, history, same-episode dedup, `max_signals` and the overflow carried, the baseline;
- `requests` (pure): the bodies (spans by time bucket, phase 3 across executions);
- `scan`: the requests, through `detector.es.Elastic` (reads only);
- `report` (pure): the would-be alerts, a summary per day, text and JSON;
- `diff` (pure): the would-be alerts a rule change adds and removes.
"""

from __future__ import annotations

from detector.preview.diff import Diff, compare
from detector.preview.report import Alert, Executed, Preview
from detector.preview.scan import preview

__all__ = ["Alert", "Diff", "Executed", "Preview", "compare", "preview"]
