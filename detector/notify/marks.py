"""The pending marks, written in the same `create` as each alert.

`MarkingWriter` wraps the alert store the engine writes through: each alert is created with
`detector.notifications.<channel>.status: pending` for every channel its routes name. The
write is one `create` with the deterministic id, so either the alert and its marks exist
together (a crash right after still leaves them pending for the next delivery pass), or the
alert existed before and is left untouched: a rerun, a backfill or an overlapping window
notifies nothing again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from detector.engine.execution import AlertWriter
from detector.es.responses import BulkResult
from detector.notify import state
from detector.notify.routing import Routing
from detector.results import NewTerm
from detector.rules import Rule


def with_marks(alert: Mapping[str, Any], channels: Sequence[str], now: datetime) -> dict[str, Any]:
    """A copy of `alert` whose `detector.notifications` is pending for `channels`."""
    marked = dict(alert)
    if channels:
        detector = dict(marked.get("detector") or {})
        detector["notifications"] = state.pending_marks(channels, now)
        marked["detector"] = detector
    return marked


class MarkingWriter:
    """An `AlertWriter` that adds the pending marks of the routing to every alert it writes."""

    def __init__(self, store: AlertWriter, routing: Routing) -> None:
        self.store = store
        self.routing = routing

    def already_alerted(
        self, rule: Rule, terms: Sequence[NewTerm], history: timedelta
    ) -> set[tuple[Any, ...]]:
        """As the wrapped store answers."""
        return self.store.already_alerted(rule, terms, history)

    def write(
        self, alerts: Mapping[str, Mapping[str, Any]], execution_id: str | None = None
    ) -> BulkResult:
        """Create the alerts, each with its pending marks."""
        now = datetime.now(UTC)
        return self.store.write(
            {key: with_marks(doc, self.routing.targets(doc), now) for key, doc in alerts.items()},
            execution_id,
        )
