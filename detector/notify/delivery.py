"""One delivery pass: the alerts not yet sent, oldest first, to each channel that wants them.

At least once: an alert's pending mark was written with it (`detector.notify.marks`); a pass
finds it (created within `max_age`), re-reads it real-time (`_mget`: a search may lag a
refresh behind a sent mark), sends it, then marks it sent with a conditional update
(`if_seq_no`/`if_primary_term`, Elasticsearch's optimistic concurrency control). A crash after
the send and before the mark resends it once; once the mark is written it is never sent again.

A channel that fails is marked `failed` on the alerts it did not take (with the error and the
attempt count), left alone for a pause that doubles up to `retry_max` seconds, and tried again
by a later pass; the other channels go on. A pass stops starting sends at its deadline, so it
never holds detection up; what is left is for the next one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from detector.errors import DetectorError, NotifyError
from detector.es.client import Elastic
from detector.es.responses import Versioned
from detector.logs import structured
from detector.notify import state
from detector.notify.routing import Routing
from detector.notify.senders import Sender
from detector.notify.state import Pending

if TYPE_CHECKING:
    from detector.metrics import Metrics

log = logging.getLogger(__name__)

# Alerts per search page (each re-read whole by `_mget`).
PAGE = 500
FIRST_PAUSE = 1.0


@dataclass
class Report:
    """What one pass did: alerts delivered and failed per channel, digests sent."""

    sent: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)
    digests: Counter[str] = field(default_factory=Counter)
    finished: bool = True  # False: the deadline came first

    @property
    def alerts_sent(self) -> int:
        """Alert deliveries of the pass, all channels together."""
        return sum(self.sent.values())


@dataclass
class _Pause:
    until: float
    seconds: float


class Delivery:
    """Delivers the pending alerts of one alerts index to the configured channels."""

    def __init__(
        self,
        elastic: Elastic,
        index: str,
        routing: Routing,
        senders: dict[str, Sender],
        *,
        max_age: timedelta = timedelta(hours=24),
        retry_max: float = 60.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.elastic, self.index, self.routing, self.senders = elastic, index, routing, senders
        self.max_age, self.retry_max, self.metrics, self.clock = max_age, retry_max, metrics, clock
        self._paused: dict[str, _Pause] = {}

    def deliver(self, rule_ids: Sequence[str] | None, seconds: float) -> Report:
        """One pass over the pending alerts (of `rule_ids`, or of every rule), for at most
        `seconds` of new sends."""
        deadline = self.clock() + seconds
        report = Report()
        ready = [name for name in self.senders if not self._pausing(name)]
        since = datetime.now(UTC) - self.max_age
        after = None
        while ready and (rule_ids is None or rule_ids):
            body = state.pending_query(ready, since, rule_ids, PAGE, after)
            page, after = state.pending_hits(self.elastic.search([self.index], body))
            if not page:
                break
            ready = self._page(page, ready, report, deadline)
            if self.clock() >= deadline:
                report.finished = False
                break
            if len(page) < PAGE:
                break
        return report

    def _pausing(self, name: str) -> bool:
        pause = self._paused.get(name)
        return pause is not None and self.clock() < pause.until

    def _page(
        self, page: Sequence[Pending], channels: list[str], report: Report, deadline: float
    ) -> list[str]:
        """Deliver one page to each channel; the channels still working afterwards."""
        current = self.elastic.mget_versioned(self.index, [item.alert_id for item in page])
        marks = Marks(self.elastic, self.index, current)
        keys = [item.alert_id for item in page if item.alert_id in current]
        fresh = [Pending(key, current[key].source) for key in keys]
        working = []
        try:
            for name in channels:
                todo = [item for item in fresh if item.unsent(name)]
                if self._channel(name, todo, marks, report, deadline):
                    working.append(name)
        finally:
            marks.flush()
        return working

    def _channel(
        self,
        name: str,
        todo: Sequence[Pending],
        marks: Marks,
        report: Report,
        deadline: float,
    ) -> bool:
        """Deliver `todo` to one channel, execution by execution; False once it failed."""
        sender = self.senders[name]
        for group in _by_execution(todo):
            if self.clock() >= deadline:
                return True
            threshold = sender.channel.digest_threshold
            batches = (
                [group]
                if sender.digests and threshold and len(group) > threshold
                else [[item] for item in group]
            )
            for batch in batches:
                if self.clock() >= deadline:
                    return True
                try:
                    self._send(sender, batch)
                except NotifyError as exc:
                    self._failed(name, batch, marks, report, exc)
                    return False
                self._sent(name, batch, marks, report)
        return True

    def _send(self, sender: Sender, batch: Sequence[Pending]) -> None:
        if len(batch) == 1:
            sender.alert(batch[0].source)
        else:
            sender.digest([item.source for item in batch])

    def _sent(
        self,
        name: str,
        batch: Sequence[Pending],
        marks: Marks,
        report: Report,
    ) -> None:
        now = datetime.now(UTC)
        for item in batch:
            attempts = int(item.state(name).get("attempts") or 0) + 1
            marks.add(item.alert_id, state.sent_update(name, attempts, now))
        report.sent[name] += len(batch)
        report.digests[name] += len(batch) > 1
        self._paused.pop(name, None)
        self._count(name, state.SENT, len(batch))
        if len(batch) > 1:
            log.info(
                "channel %s: one digest of %d alerts sent",
                name,
                len(batch),
                extra=structured(channel=name, alerts=len(batch)),
            )

    def _failed(
        self,
        name: str,
        batch: Sequence[Pending],
        marks: Marks,
        report: Report,
        exc: NotifyError,
    ) -> None:
        now = datetime.now(UTC)
        for item in batch:
            attempts = int(item.state(name).get("attempts") or 0) + 1
            marks.add(item.alert_id, state.failed_update(name, attempts, str(exc), now))
        previous = self._paused.get(name)
        seconds = min(self.retry_max, previous.seconds * 2 if previous else FIRST_PAUSE)
        self._paused[name] = _Pause(self.clock() + seconds, seconds)
        report.failed[name] = str(exc)
        self._count(name, state.FAILED, len(batch))
        log.error(
            "%s; it is tried again in %g s (the alerts stay pending)",
            exc,
            seconds,
            extra=structured(channel=name, retry_seconds=seconds),
        )

    def _count(self, name: str, status: str, alerts: int) -> None:
        if self.metrics is not None:
            self.metrics.notified(name, status, alerts)


class Marks:
    """Delivery states waiting to be written, in bulk, each a conditional update on the
    version read at the start of the page (`_mget`).

    Sends are acknowledged one by one, marks are written by the hundred: a crash in between
    resends at most those (at least once), and the pass does not wait on one update per alert.
    On a conflict (someone else updated the alert meanwhile: another replica), the alert is
    re-read and the mark written again on its new version.
    """

    FLUSH_AT = 100

    def __init__(self, elastic: Elastic, index: str, current: Mapping[str, Versioned]) -> None:
        self.elastic, self.index = elastic, index
        self.versions = {key: (doc.seq_no, doc.primary_term) for key, doc in current.items()}
        self.waiting: dict[str, dict[str, Any]] = {}

    def add(self, alert_id: str, partial: dict[str, Any]) -> None:
        """Queue a channel's state of an alert (merged with the others of the same alert)."""
        notes = self.waiting.setdefault(alert_id, {"detector": {"notifications": {}}})
        notes["detector"]["notifications"].update(partial["detector"]["notifications"])
        if len(self.waiting) >= self.FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write what is queued; a mark that cannot be written is logged (it is resent)."""
        waiting, self.waiting = self.waiting, {}
        try:
            for _ in range(3):
                if not waiting:
                    return
                updates = {key: (doc, self.versions[key]) for key, doc in waiting.items()}
                applied = self.elastic.bulk_update_versioned(self.index, updates)
                self.versions.update(applied)
                waiting = {key: doc for key, doc in waiting.items() if key not in applied}
                reread = self.elastic.mget_versioned(self.index, list(waiting))
                self.versions.update((k, (d.seq_no, d.primary_term)) for k, d in reread.items())
                waiting = {key: doc for key, doc in waiting.items() if key in reread}
        except DetectorError as exc:
            log.error("cannot record the delivery state of %d alert(s): %s", len(waiting), exc)
            return
        if waiting:
            log.error("the delivery state of %d alert(s) kept changing; not recorded", len(waiting))


def _by_execution(items: Sequence[Pending]) -> list[list[Pending]]:
    """The alerts grouped by the execution that created them, groups in order of first alert."""
    groups: dict[str, list[Pending]] = {}
    for item in items:
        groups.setdefault(item.execution, []).append(item)
    return list(groups.values())
