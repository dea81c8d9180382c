"""Notifications as the commands run them: start-up validation, `once`'s pass, `run`'s thread.

Under `detector run` delivery happens on a thread of its own, never in an execution: the
runner's sink only wakes it when an execution created alerts, and it also wakes every
`PERIOD` seconds to retry what is left (a failed channel, a crash's leftovers). Each replica
delivers only the alerts of the rules whose lease it holds, so one replica sends each alert.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detector.errors import ConfigError, DetectorError
from detector.es.client import Elastic
from detector.notify import routing as routes
from detector.notify import state
from detector.notify.delivery import Delivery, Report
from detector.notify.routing import Routing
from detector.notify.senders import senders_for
from detector.rules import Rule
from detector.settings import Settings

if TYPE_CHECKING:
    from detector.metrics import Metrics

log = logging.getLogger(__name__)

# Seconds between two passes of `detector run` when no execution wakes the thread.
PERIOD = 5.0


def validated(settings: Settings, env: Mapping[str, str] | None = None) -> Routing:
    """The routing of the settings, every URL checked (apprise is asked whether it understands
    each of its URLs); raises `ConfigError` naming every problem."""
    found = routes.from_settings(settings, env)
    if not found:
        return found
    from detector.notify.apprise_channel import understands  # lazy: apprise is slow to import

    problems = routes.unusable_urls(found.channels, understands)
    if problems:
        raise ConfigError(problems)
    return found


def delivery(
    elastic: Elastic, settings: Settings, routing: Routing, metrics: Metrics | None = None
) -> Delivery:
    """A `Delivery` to every channel of `routing` on the settings' alerts index."""
    return Delivery(
        elastic,
        settings.alerts_index,
        routing,
        senders_for(routing.channels, settings),
        max_age=settings.notify_max_age,
        retry_max=settings.notify_retry_max_seconds.total_seconds(),
        metrics=metrics,
    )


def failing(elastic: Elastic, settings: Settings, routing: Routing) -> list[state.Failing]:
    """The channels with alerts (within the delivery age) they failed to receive."""
    names = [channel.name for channel in routing.channels]
    if not names:
        return []
    since = datetime.now(UTC) - settings.notify_max_age
    response = elastic.search([settings.alerts_index], state.failing_query(names, since))
    return state.failing_channels(response, names)


def summary(report: Report) -> list[str]:
    """Lines for the user: what was delivered, what failed."""
    lines = [
        f"notifications: {count} alert(s) delivered to {name}"
        + (f" ({report.digests[name]} digest(s))" if report.digests[name] else "")
        for name, count in sorted(report.sent.items())
    ]
    lines += [
        f"notifications: {error} (left pending)" for _, error in sorted(report.failed.items())
    ]
    if not report.finished:
        lines.append("notifications: the pass ran out of time; the rest is left pending")
    return lines


class Notifier:
    """The delivery thread of `detector run`."""

    def __init__(
        self, delivery: Delivery, rule_ids: Callable[[], Sequence[str]], pass_seconds: float
    ) -> None:
        self.delivery, self.rule_ids, self.pass_seconds = delivery, rule_ids, pass_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Start a pass now (an execution created alerts)."""
        self._wake.set()

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._loop, name="notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current send (a pass checks its deadline between sends)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.pass_seconds + 15)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(PERIOD)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.run_pass()

    def run_pass(self) -> Report | None:
        """One pass over the alerts of the rules this replica holds; never raises."""
        try:
            report = self.delivery.deliver(list(self.rule_ids()), self.pass_seconds)
        except DetectorError as exc:
            log.error("notifications: the delivery pass failed: %s", exc)
            return None
        if not report.finished:
            self._wake.set()  # more to do: go on at once
        for name, count in sorted(report.sent.items()):
            log.info("notifications: %d alert(s) delivered to %s", count, name)
        return report


class WakeSink:
    """The runner's sink under `detector run`: wakes the notifier when alerts were created."""

    name = "notify"

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def deliver(self, rule: Rule, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Wake the delivery thread (the alerts are already pending in the alerts index)."""
        self.notifier.wake()
