"""`detector run` as a long-running process: one runner per rule, metrics, the scheduler.

The scheduler (`detector.service.scheduler`) calls `Runner.run_due` for each rule on its interval
with
the wall clock; everything else here is wiring: the indices are put once at start-up, each rule
gets a client of its own (so each execution's request figures are its own), and the metrics
server, when configured, lives as long as the scheduler.

Each process is a *replica* (`DETECTOR_REPLICA_ID`, default host:pid): its `Keeper` holds rule
leases, so several replicas on one cluster run each scheduled execution once
(`detector.service.replica`). On SIGTERM the running executions finish, then the replica releases
its
leases, so the others take its rules over at their next renewal round, not after expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime

from detector.errors import ServiceError
from detector.es.client import Elastic
from detector.execution_log.lease_store import LeaseStore
from detector.logs import tag_replica
from detector.metrics import Metrics
from detector.notify import notifier
from detector.notify.notifier import Notifier, WakeSink
from detector.notify.routing import Routing
from detector.rules import Rule
from detector.service import scheduler
from detector.service.replica import Keeper, replica_id
from detector.service.runner import Runner, ensure_indices
from detector.service.sinks import AlertSink, LogSink
from detector.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings, rules: Sequence[Rule], routing: Routing) -> int:
    """Run `rules` on their schedules until SIGTERM or SIGINT, notifying through `routing`
    (validated by the caller); returns the exit code."""
    with ExitStack() as stack:
        elastic = stack.enter_context(Elastic(settings))
        elastic.wait_ready()
        ensure_indices(elastic, settings)
        warn_unreadable(elastic, rules)
        metrics = stack.enter_context(_metrics(settings))
        if metrics is not None:
            metrics.track(rule.rule_id for rule in rules)
        keeper = _keeper(stack, settings, rules, metrics)
        notifier = _notifier(stack, settings, routing, keeper, metrics)
        sinks: tuple[AlertSink, ...] = (LogSink(),)
        if notifier is not None:
            sinks += (WakeSink(notifier),)

        def runner() -> Runner:  # each rule's own client: its request figures are its own
            client = stack.enter_context(Elastic(settings))
            return Runner.for_settings(
                client, settings, sinks=sinks, routing=routing, keeper=keeper, metrics=metrics
            )

        runners = {rule.rule_id: runner() for rule in rules}

        def run_rule(rule: Rule) -> None:
            runners[rule.rule_id].run_due(rule, datetime.now(UTC))

        def on_start(nudge: scheduler.Nudge) -> None:
            keeper.on_acquired = nudge

        keeper.start()
        if notifier is not None:
            notifier.start()
        try:
            code = scheduler.run(
                rules, run_rule, on_start, keeper.drain, workers=settings.rule_concurrency
            )
        finally:
            if notifier is not None:
                notifier.stop()
            keeper.stop()
            log.info("replica %s stopped and released its leases", keeper.replica)
    return code


def _keeper(
    stack: ExitStack, settings: Settings, rules: Sequence[Rule], metrics: Metrics | None
) -> Keeper:
    """The lease keeper, on a client of its own whose requests give up within one renewal
    period: a renewal retried for longer than that is late anyway, and the next one retries."""
    renew = settings.renew_delta.total_seconds()
    quick = settings.model_copy(
        update={
            "es_retry_attempts": 2,
            "es_retry_max_seconds": settings.renew_delta,
            "es_request_timeout": min(settings.es_request_timeout, settings.renew_delta),
        }
    )
    client = stack.enter_context(Elastic(quick))
    replica = replica_id(settings)
    tag_replica(replica)
    log.info(
        "replica %s: leases of %d rule(s), %g s each, renewed every %g s",
        replica,
        len(rules),
        settings.lease_seconds.total_seconds(),
        renew,
    )
    store = LeaseStore(client, settings.execution_log_index)
    return Keeper(store, rules, replica, settings.lease_seconds, settings.renew_delta, metrics)


def _notifier(
    stack: ExitStack,
    settings: Settings,
    routing: Routing,
    keeper: Keeper,
    metrics: Metrics | None,
) -> Notifier | None:
    """The delivery thread, on a client of its own, for the rules this replica holds (None
    without notification channels)."""
    if not routing:
        return None
    client = stack.enter_context(Elastic(settings))
    delivery = notifier.delivery(client, settings, routing, metrics)
    log.info("notifications: %d channel(s)", len(routing.channels))
    return Notifier(delivery, keeper.held, settings.notify_pass_seconds.total_seconds())


@contextmanager
def _metrics(settings: Settings) -> Iterator[Metrics | None]:
    """The metrics registry, served on `DETECTOR_METRICS_PORT` while in use (None if unset)."""
    if settings.metrics_port is None:
        yield None
        return
    metrics = Metrics()
    try:
        server = metrics.serve(settings.metrics_port)
    except OSError as exc:
        raise ServiceError(f"cannot serve metrics on port {settings.metrics_port}: {exc}") from None
    try:
        yield metrics
    finally:
        server.close()


def warn_unreadable(elastic: Elastic, rules: Sequence[Rule]) -> None:
    """Say loudly at start-up which rule index patterns these credentials may not read: their
    indices would be silently left out of every search (it is not an error to Elasticsearch)."""
    patterns = list(dict.fromkeys(pattern for rule in rules for pattern in rule.index))
    for pattern in elastic.unreadable(patterns) or ():
        users = [rule.rule_id for rule in rules if pattern in rule.index]
        log.error(
            "no read privilege on %s: searches leave its indices out",
            pattern,
            extra={"index_pattern": pattern, "rule_ids": users},
        )
