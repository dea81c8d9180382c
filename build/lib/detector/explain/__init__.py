"""`detector explain`: why one term did or did not alert at one time.

- `investigation`: gathers the facts with the engine's own requests and filter.
- `verdict` (pure): the facts into a verdict, a text and JSON.
"""

from __future__ import annotations

from detector.explain.investigation import explain
from detector.explain.verdict import Explanation

__all__ = ["Explanation", "explain"]
