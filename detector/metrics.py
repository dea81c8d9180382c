"""Prometheus metrics of the executions, served by `detector run` when `metrics_port` is set.

Each `Metrics` has its own registry, so several can live in one process (tests); the HTTP
server is prometheus_client's own, on a daemon thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from detector.results import FAILED, ExecutionResult

# Seconds: a quick execution takes tens of milliseconds, a heavy one minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class Server:
    """A running metrics endpoint."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The port it listens on (useful when asked for port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Metrics:
    """Counters, a histogram and a gauge, labelled by rule (and status, execution type)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.executions = Counter(
            "detector_executions",
            "Rule executions, by rule, status and execution type.",
            ["rule_id", "status", "type"],
            registry=reg,
        )
        self.failures = Counter(
            "detector_execution_failures", "Failed rule executions.", ["rule_id"], registry=reg
        )
        self.alerts = Counter(
            "detector_alerts_written", "Alerts written.", ["rule_id"], registry=reg
        )
        self.gap_seconds = Counter(
            "detector_gap_seconds", "Seconds left uncovered (gaps).", ["rule_id"], registry=reg
        )
        self.failed_windows = Counter(
            "detector_failed_windows",
            "Windows given up after DETECTOR_WINDOW_ATTEMPTS failures, to backfill.",
            ["rule_id"],
            registry=reg,
        )
        self.duration = Histogram(
            "detector_execution_duration_seconds",
            "Duration of rule executions.",
            ["rule_id"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.last_success = Gauge(
            "detector_last_success_timestamp_seconds",
            "When the rule's last successful execution ended (Unix time).",
            ["rule_id"],
            registry=reg,
        )
        self.future_documents = Gauge(
            "detector_future_documents",
            "Documents of the rule timestamped later than its last execution's window (they "
            "alert late).",
            ["rule_id"],
            registry=reg,
        )
        self.notifications = Counter(
            "detector_notifications",
            "Alert deliveries to notification channels, by channel and status (sent, failed).",
            ["channel", "status"],
            registry=reg,
        )
        self.skipped = Counter(
            "detector_skipped_documents",
            "Window documents that matched but lacked a new-terms field (no term, no alert).",
            ["rule_id"],
            registry=reg,
        )
        self.held = Counter(
            "detector_held_terms",
            "New terms not alerted because the rule's baseline was not mature (mode hold).",
            ["rule_id"],
            registry=reg,
        )
        self.coverage = Gauge(
            "detector_baseline_coverage_ratio",
            "The part of the rule's history window its data covered at the last execution.",
            ["rule_id"],
            registry=reg,
        )
        self.cluster_unavailable = Counter(
            "detector_cluster_unavailable",
            "Executions failed because a cluster (`(local)` or a remote alias) did not answer "
            "in full: skipped, shards failed or missing.",
            ["cluster"],
            registry=reg,
        )
        self.leases_held = Gauge(
            "detector_leases_held",
            "Rule leases this replica holds.",
            ["replica_id"],
            registry=reg,
        )

    def notified(self, channel: str, status: str, alerts: int = 1) -> None:
        """Count `alerts` deliveries to `channel` that ended with `status`."""
        self.notifications.labels(channel=channel, status=status).inc(alerts)

    def set_leases(self, replica: str, held: int) -> None:
        """How many leases the replica holds now."""
        self.leases_held.labels(replica_id=replica).set(held)

    def track(self, rule_ids: Iterable[str]) -> None:
        """Start each rule's counters at 0, so a failure or gap is a change from 0 rather than
        a series that appears from nowhere (Prometheus' `increase()` misses a first sample)."""
        for rule_id in rule_ids:
            self.failures.labels(rule_id=rule_id)
            self.gap_seconds.labels(rule_id=rule_id)
            self.alerts.labels(rule_id=rule_id)
            self.future_documents.labels(rule_id=rule_id)
            self.failed_windows.labels(rule_id=rule_id)
            self.skipped.labels(rule_id=rule_id)
            self.held.labels(rule_id=rule_id)

    def skipped_window(self, rule_id: str) -> None:
        """Count a failed window recorded to backfill."""
        self.failed_windows.labels(rule_id=rule_id).inc()

    def observe(
        self,
        result: ExecutionResult,
        status: str,
        execution_type: str,
        ended: datetime,
        gap_seconds: float = 0.0,
    ) -> None:
        """Count one execution."""
        rule = result.rule_id
        self.executions.labels(rule_id=rule, status=status, type=execution_type).inc()
        self.duration.labels(rule_id=rule).observe(result.duration_ms / 1000)
        self.alerts.labels(rule_id=rule).inc(result.alerts_written)
        if status != FAILED:
            self.future_documents.labels(rule_id=rule).set(result.future_documents)
        self._observe_trust(result)
        for cluster in result.unavailable_clusters:
            self.cluster_unavailable.labels(cluster=cluster).inc()
        if gap_seconds:
            self.gap_seconds.labels(rule_id=rule).inc(gap_seconds)
        if status == FAILED:
            self.failures.labels(rule_id=rule).inc()
        else:
            self.last_success.labels(rule_id=rule).set(ended.timestamp())

    def _observe_trust(self, result: ExecutionResult) -> None:
        rule = result.rule_id
        self.skipped.labels(rule_id=rule).inc(result.skipped_documents)
        self.held.labels(rule_id=rule).inc(result.held)
        if result.baseline is not None:
            self.coverage.labels(rule_id=rule).set(float(result.baseline["coverage"]))

    def serve(self, port: int, address: str = "0.0.0.0") -> Server:
        """Serve `/metrics` on `port` until `close()`."""
        server, thread = start_http_server(port, addr=address, registry=self.registry)
        return Server(server, thread)
