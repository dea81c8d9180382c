"""Real `detector run` processes: a checkpoint written ahead of the clock loses no new source,
and the alerts of an execution killed with `kill -9` are counted in its execution-log document.

Wall time is scaled down as in test_replicas: the rule runs every 5 s with an 8 s look-back, so
a checkpoint 20 s ahead is two and a half look-backs (the issue's 4 minutes on 2 minutes is two):
without the fix the replica runs nothing for 20 s, then counts that span as covered (a hole).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.es.client import Elastic
from detector.schedule import leases
from detector.settings import Settings
from tests.support import cloudtrail as ct
from tests.support import replicas as rp
from tests.support.es_node import EsNode
from tests.support.proxy import Proxy

INTERVAL = timedelta(seconds=5)
AHEAD = timedelta(seconds=20)
# Two real processes one after the other, a minute of wall time, and (when first) the node's
# start-up: more than the suite's 300 s on a loaded 2-core machine.
pytestmark = [pytest.mark.timeout(600), pytest.mark.scenario]


def health(node: EsNode, settings: Settings, rules: Path) -> subprocess.CompletedProcess[str]:
    env = rp.command_env(node, settings, rules)
    command = [sys.executable, "-m", "detector", "health"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def write_future_checkpoint(elastic: Elastic, index: str, rule_id: str) -> datetime:
    """What a replica on a fast-clocked host leaves behind: a free lease whose checkpoint is
    `AHEAD` in the future (on the rule's grid)."""
    now = datetime.now(UTC)
    ahead = leases.grid_floor(now + AHEAD, INTERVAL)
    doc = leases.lease_doc(rule_id, "fast", None, now=now, expires=now, checkpoint=ahead)
    elastic.index_document(index, leases.lease_id(rule_id), doc)
    elastic.refresh(index)
    return ahead


def test_a_checkpoint_ahead_of_the_clock_is_skew_and_loses_no_new_source(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index = f"logs-aws.cloudtrail-skew-{token}"
    rules = tmp_path / "rules"
    (rule_id,) = rp.write_rules(rules, index, 1)
    log_index = es_settings.execution_log_index
    feeder = rp.Feeder(elastic, index, every=1.0)
    with feeder.running():
        first = rp.start_replica(es_node, es_settings, rules, tmp_path, "before")
        try:
            rp.wait_until(
                lambda: len(rp.runs_by_rule(rp.executions(elastic, log_index))) > 0, 90, "a run"
            )
            time.sleep(8)
        finally:
            assert rp.stop([first]) == [0]
        ahead = write_future_checkpoint(elastic, log_index, rule_id)
        red = health(es_node, es_settings, rules)
        second = rp.start_replica(es_node, es_settings, rules, tmp_path, "after")
        try:
            time.sleep(32)  # past the checkpoint "ahead", and some runs more
        finally:
            stopped = datetime.now(UTC)
            assert rp.stop([second]) == [0]
    assert red.returncode == 1, red.stdout
    assert "clock skew: checkpoint" in red.stdout
    assert "s ahead of the clock" in red.stdout

    docs = rp.executions(elastic, log_index)
    runs = rp.runs_by_rule(docs)
    rp.assert_each_time_once(runs, [rule_id], INTERVAL)  # no hole where the skew was
    assert max(runs[rule_id]) >= stopped - 3 * INTERVAL  # it kept up to the end
    after = [doc for doc in docs if doc["replica"]["id"] == "after"]
    skewed = [doc for doc in after if "skew" in doc]
    assert len(skewed) == 1
    assert skewed[0]["execution"]["status"] == "partial failure"
    assert any("clock skew" in warning for warning in skewed[0]["execution"]["warnings"])
    stored = rp.stored_alerts(elastic, es_settings.alerts_index)
    expected = rp.expected_alerts(feeder.docs, rp.spec(index), runs)
    assert sorted(stored) == sorted(expected)
    late = [item for item in expected if item[2] > ahead - AHEAD]
    assert late, "no new source arrived after the skew: the test would prove nothing"
    records = second.records()
    assert any("clock skew" in record["message"] for record in records)


def alerts_by_execution(elastic: Elastic, index: str) -> Counter[str]:
    elastic.refresh(index)
    hits = elastic.search([index], {"size": 10000})["hits"]["hits"]
    return Counter(hit["_source"]["kibana"]["alert"]["rule"]["execution"]["uuid"] for hit in hits)


def caught_mid_execution(elastic: Elastic, settings: Settings) -> str | None:
    """The id of an execution that is still `running` but has written alerts already."""
    elastic.refresh(settings.execution_log_index)
    body = {"size": 10, "query": {"term": {"execution.status": "running"}}}
    hits = elastic.search([settings.execution_log_index], body)["hits"]["hits"]
    written = alerts_by_execution(elastic, settings.alerts_index)
    return next((hit["_id"] for hit in hits if written[hit["_id"]] > 0), None)


def ended_by(elastic: Elastic, settings: Settings, replica: str) -> list[dict[str, Any]]:
    """The executions of `replica` that have ended."""
    return [
        doc
        for doc in rp.executions(elastic, settings.execution_log_index)
        if doc["replica"]["id"] == replica and doc["execution"]["status"] != "running"
    ]


def test_the_alerts_of_an_execution_killed_mid_way_are_counted_from_the_alerts_index(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index = f"logs-aws.cloudtrail-kill9-{token}"
    rules = tmp_path / "rules"
    (rule_id,) = rp.write_rules(rules, index, 1)
    feeder = rp.Feeder(elastic, index, every=0.3)
    slow = Proxy(es_node.url, delay=0.4)  # an execution lasts long enough to be caught
    doomed: rp.Replica | None = None
    try:
        with feeder.running():
            doomed = rp.start_replica(es_node, es_settings, rules, tmp_path, "doomed", url=slow.url)
            killed = rp.wait_until(
                lambda: caught_mid_execution(elastic, es_settings), 120, "alerts before the log"
            )
            os.kill(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait(timeout=30)
            heir = rp.start_replica(es_node, es_settings, rules, tmp_path, "heir")
            try:
                # The lease expires (6 s), then the heir reconciles and runs the rule.
                rp.wait_until(lambda: ended_by(elastic, es_settings, "heir"), 120, "the heir")
            finally:
                assert rp.stop([heir]) == [0]
    finally:
        if doomed is not None:
            rp.kill(doomed)  # reaped even when it was never caught mid-execution
        slow.close()

    docs = {
        doc["execution"]["id"]: doc
        for doc in rp.executions(elastic, es_settings.execution_log_index)
    }
    written = alerts_by_execution(elastic, es_settings.alerts_index)
    reconciled = docs[killed]
    assert reconciled["execution"]["status"] == "failed"
    assert reconciled["execution"]["error"].startswith("interrupted")
    assert reconciled["metrics"]["alerts_counted"] == "alerts index"
    assert reconciled["metrics"]["alerts_written"] == written[killed] > 0
    assert not [doc for doc in docs.values() if doc["execution"]["status"] == "running"]
    counts: dict[str, Any] = {key: doc["metrics"]["alerts_written"] for key, doc in docs.items()}
    assert counts == {key: written.get(key, 0) for key in docs}
    assert sum(counts.values()) == sum(written.values())
    assert any(
        doc["replica"]["id"] == "heir" and doc["rule"]["id"] == rule_id for doc in docs.values()
    )


def test_once_then_run_is_no_clock_skew_and_the_next_slot_runs_clean(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    """The README's path: `once` leaves a checkpoint a few seconds after the current slot;
    `run` started right after compares it with the wall clock, not with that slot."""
    index = f"logs-aws.cloudtrail-once-run-{token}"
    rules = tmp_path / "rules"
    (rule_id,) = rp.write_rules(rules, index, 1, interval="1m", lookback="2m")
    ct.create_index(elastic, index)
    env = rp.command_env(es_node, es_settings, rules)
    env["DETECTOR_ALERTS_INDEX"] = es_settings.alerts_index
    rp.wait_for_slot(timedelta(minutes=1), into=1)  # `once` and `run` in the same grid cell
    done = subprocess.run(
        [sys.executable, "-m", "detector", "once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    replica = rp.start_replica(es_node, es_settings, rules, tmp_path, "after-once")
    try:
        ran = rp.wait_until(
            lambda: ended_by(elastic, es_settings, "after-once"),
            120,
            "a scheduled execution of `run`",
            step=1,
        )
    finally:
        assert rp.stop([replica]) == [0]
    assert [doc["execution"]["status"] for doc in ran] == ["succeeded"], ran
    assert not any("skew" in doc for doc in ran)
    assert not [r for r in replica.records() if "clock skew" in r["message"]]
    assert ran[0]["rule"]["id"] == rule_id
    green = health(es_node, es_settings, rules)
    assert green.returncode == 0, green.stdout + green.stderr
