"""Notifications end to end: real receivers on loopback (an HTTP server for the webhook and
apprise's json://, an SMTP server for mailto://), real `detector once` and `detector run`
processes, the real node. Each created alert arrives once; nothing that existed is sent again;
an outage, a `kill -9` and 150 alerts in one execution lose nothing and duplicate nothing."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from detector.engine.execution import execute
from detector.es.client import Elastic
from detector.execution_log.documents import SCHEDULED, Replica
from detector.notify import from_settings
from detector.notify.channels import url_name
from detector.results import ExecutionRef
from detector.service.runner import Runner, ensure_indices
from detector.settings import Settings
from tests.integration.test_engine import T0, cloudtrail_index, event, token_rule
from tests.support import cloudtrail as ct
from tests.support.commands import detector_env
from tests.support.es_node import EsNode
from tests.support.receivers import HttpReceiver, SmtpReceiver
from tests.support.replicas import lease_holders, start_replica, write_rules
from tests.support.runs import add_events

pytestmark = pytest.mark.es

SECRET = "s3cret-hmac-key"
# How long the receiver stays down in the outage test; the 2 minutes by hand:
# DETECTOR_TEST_OUTAGE_SECONDS=120.
OUTAGE = float(os.environ.get("DETECTOR_TEST_OUTAGE_SECONDS", "15"))


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def index(elastic: Elastic, token: str) -> str:
    """This test's CloudTrail index, created empty: its rules read it, its events go there."""
    name = f"logs-aws.cloudtrail-{token}"
    ct.create_index(elastic, name)
    return name


def _env(node: EsNode, settings: Settings, rules: Path, **extra: str) -> dict[str, str]:
    return detector_env(
        node,
        DETECTOR_ALERTS_INDEX=settings.alerts_index,
        DETECTOR_EXECUTION_LOG_INDEX=settings.execution_log_index,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
        **extra,
    )


def detector(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _sources(
    elastic: Elastic, index: str, addresses: list[str], at: datetime, start: int = 0
) -> None:
    docs = {f"doc-{start + n}": ct.anonymous_s3_event(a, at=at) for n, a in enumerate(addresses)}
    elastic.bulk_create(index, docs, refresh=True)


def _alerts(elastic: Elastic, index: str) -> list[dict[str, Any]]:
    elastic.refresh(index)
    hits = elastic.search([index], {"size": 1000})["hits"]["hits"]
    return [hit["_source"] for hit in hits]


def _statuses(alerts: list[dict[str, Any]], channel: str) -> list[str]:
    return [a["detector"].get("notifications", {}).get(channel, {}).get("status") for a in alerts]


def _wait(
    condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text()[-4000:] if log is not None else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.3)


def test_once_notifies_each_created_alert_once_and_never_the_existing_ones(
    es_node: EsNode,
    es_settings: Settings,
    elastic: Elastic,
    index: str,
    tmp_path: Path,
    http: HttpReceiver,
    smtp: SmtpReceiver,
) -> None:
    write_rules(tmp_path / "rules", index, 1, interval="5m", lookback="9m")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    _sources(
        elastic, index, ["203.0.113.1", "203.0.113.2", "203.0.113.3"], at - timedelta(minutes=2)
    )
    hook, feed = http.url("webhook+http", "/hook"), http.url("json", "/json")
    urls = ",".join([hook, feed, smtp.url()])
    env = _env(
        es_node,
        es_settings,
        tmp_path / "rules",
        DETECTOR_NOTIFY_URLS=urls,
        DETECTOR_NOTIFY_WEBHOOK_SECRET=SECRET,
    )

    first = detector(env, "once", "--at", at.isoformat())
    assert first.returncode == 0, first.stderr
    alerts = _alerts(elastic, es_settings.alerts_index)
    ids = {a["kibana"]["alert"]["uuid"] for a in alerts}
    assert len(ids) == 3
    assert dict(http.keys("/hook")) == dict.fromkeys(ids, 1)
    assert len(http.on("/json")) == 3 and len(smtp.messages) == 3
    for name in (url_name(hook), url_name(feed), url_name(smtp.url())):
        assert _statuses(alerts, name) == ["sent"] * 3, name

    # A rerun, an overlapping window, a backfill over the same time: nothing new, nothing resent.
    assert detector(env, "once", "--at", at.isoformat()).returncode == 0
    assert detector(env, "once", "--at", (at + timedelta(minutes=1)).isoformat()).returncode == 0
    start, end = (at - timedelta(minutes=5)).isoformat(), at.isoformat()
    assert detector(env, "backfill", "--start", start, "--end", end).returncode == 0
    assert detector(env, "once", "--at", (at + timedelta(minutes=1)).isoformat()).returncode == 0
    assert len(http.on("/hook")) == 3 and len(http.on("/json")) == 3 and len(smtp.messages) == 3

    # One new source later: exactly one more message on each channel.
    _sources(elastic, index, ["203.0.113.9"], at + timedelta(minutes=1), start=10)
    assert detector(env, "once", "--at", (at + timedelta(minutes=2)).isoformat()).returncode == 0
    assert len(http.on("/hook")) == 4 and len(http.on("/json")) == 4 and len(smtp.messages) == 4
    assert max(http.keys("/hook").values()) == 1


def test_webhook_posts_the_alert_document_signed_with_its_id_as_idempotency_key(
    es_node: EsNode,
    es_settings: Settings,
    elastic: Elastic,
    index: str,
    tmp_path: Path,
    http: HttpReceiver,
) -> None:
    write_rules(tmp_path / "rules", index, 1, interval="5m", lookback="9m")
    at = datetime.now(UTC).replace(microsecond=0)
    _sources(elastic, index, ["198.51.100.7"], at - timedelta(minutes=2))
    env = _env(
        es_node,
        es_settings,
        tmp_path / "rules",
        DETECTOR_NOTIFY_URLS=http.url("webhook+http", "/soar"),
        DETECTOR_NOTIFY_WEBHOOK_SECRET=SECRET,
    )
    assert detector(env, "once", "--at", at.isoformat()).returncode == 0
    [request] = http.on("/soar")
    [stored] = _alerts(elastic, es_settings.alerts_index)
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Detector-Signature"], expected)
    assert request.headers["Idempotency-Key"] == stored["kibana"]["alert"]["uuid"]
    posted = request.json()
    assert posted["kibana"]["alert"] == stored["kibana"]["alert"]
    assert posted["source"]["address"] == "198.51.100.7"


def test_150_alerts_of_one_execution_make_one_digest_per_human_channel_and_all_are_sent(
    es_node: EsNode,
    es_settings: Settings,
    elastic: Elastic,
    index: str,
    tmp_path: Path,
    http: HttpReceiver,
    smtp: SmtpReceiver,
) -> None:
    [rule_id] = write_rules(tmp_path / "rules", index, 1, interval="5m", lookback="9m")
    rule_file = tmp_path / "rules" / f"{rule_id}.toml"
    rule_file.write_text(rule_file.read_text().replace("max_signals = 100", "max_signals = 200"))
    at = datetime.now(UTC).replace(microsecond=0)
    addresses = [f"203.0.{n // 200}.{n % 200 + 1}" for n in range(150)]
    _sources(elastic, index, addresses, at - timedelta(minutes=2))
    routing = tmp_path / "notifications.toml"
    routing.write_text(
        '[channel.feed]\nurl_env = "FEED_URL"\ndigest_threshold = 20\n\n'
        '[channel.mail]\nurl_env = "MAIL_URL"\ndigest_threshold = 20\n\n'
        '[channel.soar]\nurl_env = "SOAR_URL"\n'
    )
    env = _env(
        es_node,
        es_settings,
        tmp_path / "rules",
        DETECTOR_NOTIFICATIONS_FILE=str(routing),
        FEED_URL=http.url("json", "/json"),
        MAIL_URL=smtp.url(),
        SOAR_URL=http.url("webhook+http", "/soar"),
    )
    done = detector(env, "once", "--at", at.isoformat())
    assert done.returncode == 0, done.stderr
    alerts = _alerts(elastic, es_settings.alerts_index)
    assert len(alerts) == 150
    [digest] = http.on("/json")
    assert digest.json()["title"].startswith("150 new alerts")
    [mail] = smtp.messages
    assert "150 new alert(s)" in mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert len(http.keys("/soar")) == 150, done.stderr[-3000:]
    assert max(http.keys("/soar").values()) == 1
    for name in ("feed", "mail", "soar"):
        assert _statuses(alerts, name) == ["sent"] * 150, name


def _running(elastic: Elastic, settings: Settings, replica: Any) -> None:
    """Wait for the replica's first execution: sources written from then on are seen."""

    def executed() -> bool:
        elastic.refresh(settings.execution_log_index)
        query = {"term": {"kind": "execution"}}
        return elastic.count([settings.execution_log_index], query) > 0

    _wait(executed, 90, "the replica's first execution", replica.log)


def _run_env(http: HttpReceiver, path: str) -> dict[str, str]:
    return {
        "DETECTOR_NOTIFY_URLS": f"{http.url('webhook+http', path)},{http.url('json', '/json')}",
        "DETECTOR_NOTIFY_RETRY_MAX_SECONDS": "2",
        "DETECTOR_NOTIFY_RETRY_ATTEMPTS": "1",
        "DETECTOR_LOG_LEVEL": "INFO",
    }


@pytest.mark.scenario
def test_receiver_down_then_back_gets_everything_once_and_health_names_the_channel_meanwhile(
    es_node: EsNode,
    es_settings: Settings,
    elastic: Elastic,
    index: str,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    write_rules(rules, index, 1)
    down = HttpReceiver()  # not started: its port refuses connections
    extra = _run_env(down, "/hook")
    replica = start_replica(es_node, es_settings, rules, tmp_path, "notify-a", extra=extra)
    try:
        _running(elastic, es_settings, replica)
        now = datetime.now(UTC)
        _sources(elastic, index, [f"192.0.2.{n}" for n in range(1, 6)], now + timedelta(seconds=2))
        hook = url_name(down.url("webhook+http", "/hook"))

        def failed() -> bool:
            return "failed" in _statuses(_alerts(elastic, es_settings.alerts_index), hook)

        _wait(failed, 60, "a failed delivery", replica.log)
        health = detector(_env(es_node, es_settings, rules, **extra), "health")
        assert health.returncode == 1
        assert f"notification channel {hook}:" in health.stdout
        shown = health.stdout + health.stderr
        assert "/hook" not in shown and f":{down.port}" not in shown  # URLs are never shown
        time.sleep(OUTAGE)
        assert replica.alive()
        down.start()
        try:

            def all_sent() -> bool:
                alerts = _alerts(elastic, es_settings.alerts_index)
                return len(alerts) == 5 and set(_statuses(alerts, hook)) == {"sent"}

            _wait(all_sent, 60, "every alert sent", replica.log)
            time.sleep(3)  # a few more passes: nothing may come again
            ids = {a["kibana"]["alert"]["uuid"] for a in _alerts(elastic, es_settings.alerts_index)}
            assert dict(down.keys("/hook")) == dict.fromkeys(ids, 1)
            assert len(down.on("/json")) == 5
            assert detector(_env(es_node, es_settings, rules, **extra), "health").returncode == 0
        finally:
            down.stop()
    finally:
        replica.process.terminate()
        replica.process.wait(timeout=60)


@pytest.mark.scenario
def test_kill_9_after_the_alerts_were_written_and_before_they_were_notified_loses_nothing(
    es_node: EsNode,
    es_settings: Settings,
    elastic: Elastic,
    index: str,
    tmp_path: Path,
    http: HttpReceiver,
) -> None:
    rules = tmp_path / "rules"
    write_rules(rules, index, 1)
    http.hold()  # the first POST is never acknowledged: the detector is mid-delivery
    extra = _run_env(http, "/hook")
    first = start_replica(es_node, es_settings, rules, tmp_path, "notify-a", extra=extra)
    _running(elastic, es_settings, first)
    _sources(
        elastic,
        index,
        [f"192.0.2.{n}" for n in range(1, 4)],
        datetime.now(UTC) + timedelta(seconds=2),
    )
    assert http.arrived.wait(60), "no delivery started"
    first.process.kill()
    first.process.wait(timeout=30)
    alerts = _alerts(elastic, es_settings.alerts_index)
    hook = url_name(http.url("webhook+http", "/hook"))
    assert len(alerts) == 3 and "sent" not in _statuses(alerts, hook)
    http.release()
    second = start_replica(es_node, es_settings, rules, tmp_path, "notify-b", extra=extra)
    try:

        def all_sent() -> bool:
            return set(_statuses(_alerts(elastic, es_settings.alerts_index), hook)) == {"sent"}

        _wait(all_sent, 90, "every alert sent after the restart", second.log)
        ids = {a["kibana"]["alert"]["uuid"] for a in _alerts(elastic, es_settings.alerts_index)}
        received = http.keys("/hook")
        assert set(received) == ids
        # At least once: only the POST in flight at the kill may come twice.
        assert sum(received.values()) <= len(ids) + 1
    finally:
        second.process.terminate()
        second.process.wait(timeout=60)


@pytest.mark.scenario
def test_with_two_replicas_each_alert_is_delivered_once_by_its_rules_holder(
    es_node: EsNode,
    es_settings: Settings,
    elastic: Elastic,
    index: str,
    tmp_path: Path,
    http: HttpReceiver,
) -> None:
    rules = tmp_path / "rules"
    rule_ids = write_rules(rules, index, 4)
    extra = _run_env(http, "/hook")
    replicas = [
        start_replica(es_node, es_settings, rules, tmp_path, f"notify-{name}", extra=extra)
        for name in ("a", "b")
    ]
    try:

        def balanced() -> bool:
            holders = lease_holders(elastic, es_settings.execution_log_index, rule_ids)
            return sorted(holders.values(), key=str) == ["notify-a"] * 2 + ["notify-b"] * 2

        _wait(balanced, 90, "two rules held by each replica", replicas[0].log)
        hook = url_name(http.url("webhook+http", "/hook"))
        now = datetime.now(UTC)
        _sources(elastic, index, [f"192.0.2.{n}" for n in range(1, 6)], now + timedelta(seconds=2))

        def all_sent() -> bool:
            alerts = _alerts(elastic, es_settings.alerts_index)
            return len(alerts) == 20 and set(_statuses(alerts, hook)) == {"sent"}

        _wait(all_sent, 90, "every alert of the 4 rules sent", replicas[0].log)
        time.sleep(3)
        ids = {a["kibana"]["alert"]["uuid"] for a in _alerts(elastic, es_settings.alerts_index)}
        assert dict(http.keys("/hook")) == dict.fromkeys(ids, 1)
        senders = {
            replica.name
            for replica in replicas
            for record in replica.records()
            if "delivered to" in str(record.get("message", ""))
        }
        assert senders == {"notify-a", "notify-b"}  # both held rules, each sent its own
    finally:
        for replica in replicas:
            replica.process.terminate()
        for replica in replicas:
            replica.process.wait(timeout=60)


def test_with_notifications_on_a_killed_execution_s_alerts_are_counted_when_reconciled(
    elastic: Elastic, es_settings: Settings, token: str
) -> None:
    """The alert store is wrapped (pending marks) when notifications are on: the reconciling
    runner must still know the alerts index to count the killed execution's alerts in it."""
    rule = token_rule(token)
    add_events(
        elastic,
        cloudtrail_index(token),
        [event(f"198.51.100.{n}", T0 + timedelta(minutes=n)) for n in (1, 2, 3)],
    )
    settings = es_settings.model_copy(update={"notify_urls": SecretStr("json://127.0.0.1:9/")})
    now, killed_id = T0 + timedelta(minutes=5), f"killed-{token}"
    routing = from_settings(settings)
    ensure_indices(elastic, settings)
    killed = Runner.for_settings(elastic, settings, routing=routing)
    execution = ExecutionRef(SCHEDULED, killed_id)
    killed.records.started(rule, now, execution, datetime.now(UTC), Replica("gone"))
    # The process dies after its alerts were written and before its log document was.
    written = execute(elastic, killed.store, rule, now, execution=execution).alerts_written
    assert written == 3

    heir = Runner.for_settings(elastic, settings, routing=routing)
    heir.run_due(rule, now + timedelta(minutes=5))

    reconciled = elastic.get_document(settings.execution_log_index, killed_id)
    assert reconciled is not None
    assert reconciled["execution"]["status"] == "failed"
    assert reconciled["metrics"]["alerts_counted"] == "alerts index"
    assert reconciled["metrics"]["alerts_written"] == written
