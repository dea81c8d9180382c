"""Replicas of `detector run` on the real node: each scheduled time once, spread, takeover.

Real processes throughout (`detector run` subprocesses, SIGTERM, kill -9, SIGSTOP/SIGCONT) and a
fault-injecting TCP proxy on 127.0.0.1 for "Elasticsearch is down". Wall time is scaled down:
rules run every 5 s with 6 s leases renewed every 2 s, so a minute here holds as many scheduled
times per rule as an hour at the default 5-minute interval would hold in twelve (the issue's
"10 minutes" at a 5-minute interval is two executions per rule; here each rule gets a dozen).
"""

from __future__ import annotations

import json
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
from detector.settings import Settings
from tests.support import replicas as rp
from tests.support.bruteforce import parse_time
from tests.support.es_node import EsNode
from tests.support.proxy import Proxy

# Long real-process scenarios: against one Elasticsearch version (scripts/check).
pytestmark = pytest.mark.scenario

INTERVAL = timedelta(seconds=5)
LEASE, RENEW = 6.0, 2.0


def check_exactly_once_and_oracle(
    elastic: Elastic, settings: Settings, feeder: rp.Feeder, rule_ids: list[str]
) -> dict[str, list[datetime]]:
    """The log holds each grid time once per rule, and the alerts are the oracle's."""
    runs = rp.runs_by_rule(rp.executions(elastic, settings.execution_log_index))
    rp.assert_each_time_once(runs, rule_ids, INTERVAL)
    stored = rp.stored_alerts(elastic, settings.alerts_index)
    expected = rp.expected_alerts(feeder.docs, rp.spec(feeder.index), runs)
    assert len(stored) == len(set(stored)), "an alert is duplicated"
    assert sorted(stored) == sorted(expected)
    assert expected, "no alert at all: the test would prove nothing"
    return runs


def test_three_replicas_run_each_scheduled_time_of_twelve_rules_once_and_spread_the_leases(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index = f"logs-aws.cloudtrail-replicas-{token}"
    rule_ids = rp.write_rules(tmp_path / "rules", index, 12)
    feeder = rp.Feeder(elastic, index, every=0.5)
    samples: list[Counter[str | None]] = []
    with feeder.running():
        replicas = [
            rp.start_replica(es_node, es_settings, tmp_path / "rules", tmp_path, f"replica-{n}")
            for n in range(3)
        ]
        try:
            time.sleep(20)  # start-up and rebalancing: a few renewal periods
            for _ in range(25):  # ~50 s of steady running, the leases sampled every 2 s
                holders = rp.lease_holders(elastic, es_settings.execution_log_index, rule_ids)
                samples.append(Counter(holders.values()))
                time.sleep(2)
            status = _status(es_node, es_settings, tmp_path / "rules")
        finally:
            codes = rp.stop(replicas)
    assert codes == [0, 0, 0]
    runs = check_exactly_once_and_oracle(elastic, es_settings, feeder, rule_ids)
    assert min(len(times) for times in runs.values()) >= 12
    most = max(count for sample in samples for name, count in sample.items() if name)
    assert most <= 6, f"a replica held {most} of 12 leases"
    assert all(sample[None] == 0 for sample in samples[3:]), "a rule was left without a holder"
    by_replica = Counter(
        doc["replica"]["id"] for doc in rp.executions(elastic, es_settings.execution_log_index)
    )
    assert set(by_replica) == {"replica-0", "replica-1", "replica-2"}
    assert {row["rule_id"] for row in status} == set(rule_ids)
    assert {row["holder"] for row in status} <= {"replica-0", "replica-1", "replica-2"}
    released = [replica.records() for replica in replicas]
    assert all(any("released the lease" in r["message"] for r in records) for records in released)
    print(f"\nexecutions per rule: {sorted(len(t) for t in runs.values())}; max leases held {most}")


def _status(node: EsNode, settings: Settings, rules: Path) -> list[dict[str, object]]:
    env = rp.command_env(node, settings, rules)
    table = subprocess.run(
        [sys.executable, "-m", "detector", "status"], env=env, capture_output=True, text=True
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:2] == ["rule", "holder"]
    done = subprocess.run(
        [sys.executable, "-m", "detector", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _runs_of(elastic: Elastic, index: str, rule_id: str) -> list[dict[str, object]]:
    docs = rp.executions(elastic, index)
    return [doc for doc in docs if doc["rule"]["id"] == rule_id]


def test_kill_9_of_the_holder_hands_its_rules_over_within_lease_plus_interval_sigterm_at_once(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index = f"logs-aws.cloudtrail-kill-{token}"
    rule_ids = rp.write_rules(tmp_path / "rules", index, 4)
    feeder = rp.Feeder(elastic, index)
    log_index = es_settings.execution_log_index
    with feeder.running():
        replicas = [
            rp.start_replica(es_node, es_settings, tmp_path / "rules", tmp_path, f"replica-{n}")
            for n in range(3)
        ]
        try:
            time.sleep(15)
            victim_name = rp.wait_until(
                lambda: rp.lease_holders(elastic, log_index, rule_ids)[rule_ids[0]], 20, "a holder"
            )
            victim = next(replica for replica in replicas if replica.name == victim_name)
            victim.process.send_signal(signal.SIGKILL)
            killed = time.time()

            def taken_over() -> float | None:
                for doc in _runs_of(elastic, log_index, rule_ids[0]):
                    execution, replica = doc["execution"], doc["replica"]
                    started = parse_time(execution["started"]).timestamp()  # type: ignore[index]
                    if replica["id"] != victim_name and started > killed:  # type: ignore[index]
                        return started - killed
                return None

            takeover = rp.wait_until(taken_over, LEASE + INTERVAL.total_seconds() + 10, "takeover")
            time.sleep(8)
            # SIGTERM hands over at once: the last replica holds everything well before expiry
            leaving, last = [replica for replica in replicas if replica is not victim]
            leaving.process.terminate()
            assert leaving.process.wait(timeout=30) == 0
            left = time.time()
            rp.wait_until(
                lambda: set(rp.lease_holders(elastic, log_index, rule_ids).values()) == {last.name},
                LEASE,
                "the handover",
            )
            handover = time.time() - left
            time.sleep(6)
        finally:
            codes = rp.stop(replicas)
    assert codes.count(0) == 2 and victim.process.returncode == -signal.SIGKILL
    print(f"\ntakeover {takeover:.1f} s after kill -9, handover {handover:.1f} s after SIGTERM")
    assert takeover <= LEASE + INTERVAL.total_seconds()
    assert handover < LEASE - RENEW
    check_exactly_once_and_oracle(elastic, es_settings, feeder, rule_ids)


def test_a_paused_replica_is_fenced_it_moves_no_checkpoint_it_lost_and_duplicates_nothing(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index = f"logs-aws.cloudtrail-pause-{token}"
    rule_ids = rp.write_rules(tmp_path / "rules", index, 2)
    feeder = rp.Feeder(elastic, index)
    log_index = es_settings.execution_log_index
    # The replica to pause talks through a slow proxy: its executions last long enough to be
    # caught in the middle (a process paused mid-execution, as by a long GC pause).
    slow = Proxy(es_node.url, delay=0.3)
    with feeder.running():
        paused = rp.start_replica(
            es_node, es_settings, tmp_path / "rules", tmp_path, "paused", url=slow.url, lease=8
        )
        other = None
        try:
            rp.wait_until(
                lambda: len(_held_by(elastic, log_index, rule_ids, "paused")) == 2, 40, "leases"
            )
            other = rp.start_replica(
                es_node, es_settings, tmp_path / "rules", tmp_path, "other", lease=8
            )
            rp.wait_until(lambda: _held_by(elastic, log_index, rule_ids, "other"), 40, "a share")
            rule_id = rp.wait_until(
                lambda: next(iter(_held_by(elastic, log_index, rule_ids, "paused")), None),
                20,
                "a rule held by the replica to pause",
            )
            seen = len(_executing(paused, rule_id))
            rp.wait_until(lambda: len(_executing(paused, rule_id)) > seen, 20, "an execution", 0.02)
            paused.process.send_signal(signal.SIGSTOP)
            rp.wait_until(
                lambda: rule_id in _held_by(elastic, log_index, rule_ids, "other"), 30, "takeover"
            )
            time.sleep(6)  # the new holder runs the rule's due times
            before = _checkpoint(elastic, log_index, rule_id)
            paused.process.send_signal(signal.SIGCONT)
            rp.wait_until(lambda: _fenced(elastic, log_index), 30, "the fenced attempt")
            time.sleep(6)
            after = _checkpoint(elastic, log_index, rule_id)
        finally:
            paused.process.send_signal(signal.SIGCONT)
            codes = rp.stop([paused, *([other] if other else [])])
            slow.close()
    assert codes == [0, 0]
    assert after >= before
    fenced = _fenced(elastic, log_index)
    assert {doc["replica"]["id"] for doc in fenced} == {"paused"}
    assert {doc["rule"]["id"] for doc in fenced} == {rule_id}
    assert any("was fenced" in record["message"] for record in paused.records())
    check_exactly_once_and_oracle(elastic, es_settings, feeder, rule_ids)


def _held_by(elastic: Elastic, index: str, rule_ids: list[str], name: str) -> list[str]:
    holders = rp.lease_holders(elastic, index, rule_ids)
    return [rule_id for rule_id, holder in holders.items() if holder == name]


def _executing(replica: rp.Replica, rule_id: str) -> list[dict[str, object]]:
    return [
        record
        for record in replica.records()
        if record.get("rule_id") == rule_id and str(record["message"]).endswith("(scheduled)")
    ]


def _checkpoint(elastic: Elastic, index: str, rule_id: str) -> datetime:
    found = elastic.get_document(index, f"lease:{rule_id}")
    assert found is not None
    return parse_time(found["checkpoint"])


def _fenced(elastic: Elastic, index: str) -> list[dict[str, Any]]:
    return [doc for doc in rp.executions(elastic, index) if doc["replica"]["fenced"]]


def test_elasticsearch_down_for_90_s_under_three_replicas_all_survive_and_catch_up(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    index = f"logs-aws.cloudtrail-down-{token}"
    rule_ids = rp.write_rules(tmp_path / "rules", index, 6)
    feeder = rp.Feeder(elastic, index)
    proxy = Proxy(es_node.url)
    with feeder.running():
        replicas = [
            rp.start_replica(
                es_node, es_settings, tmp_path / "rules", tmp_path, f"replica-{n}", url=proxy.url
            )
            for n in range(3)
        ]
        try:
            time.sleep(15)
            proxy.down()
            down = datetime.now(UTC)
            time.sleep(90)
            alive = [replica.alive() for replica in replicas]
            proxy.up()
            back = datetime.now(UTC)
            caught_up = rp.wait_until(
                lambda: _caught_up(elastic, es_settings.execution_log_index, rule_ids, back),
                90,
                "the catch-up",
                step=0.5,
            )
            time.sleep(5)
        finally:
            codes = rp.stop(replicas)
            proxy.close()
    assert alive == [True, True, True]
    assert codes == [0, 0, 0]
    for replica in replicas:
        messages = [record["message"] for record in replica.records()]
        assert any("cannot reach Elasticsearch" in message for message in messages)
        assert "Traceback" not in replica.log.read_text()
    runs = check_exactly_once_and_oracle(elastic, es_settings, feeder, rule_ids)
    # every rule ran from before the outage to after it, without a hole
    assert all(times[0] < down and times[-1] >= back for times in runs.values())
    print(
        f"\ncaught up {caught_up:.1f} s after Elasticsearch came back; runs per rule: "
        f"{sorted(len(times) for times in runs.values())}"
    )


def _caught_up(elastic: Elastic, index: str, rule_ids: list[str], back: datetime) -> float | None:
    """Seconds since `back` once every rule's checkpoint is at a grid time after `back`."""
    found = elastic.mget_versioned(index, [f"lease:{rule_id}" for rule_id in rule_ids])
    checkpoints = [doc.source["checkpoint"] for doc in found.values()]
    if len(checkpoints) < len(rule_ids) or None in checkpoints:
        return None
    if min(parse_time(text) for text in checkpoints) >= back:
        return (datetime.now(UTC) - back).total_seconds()
    return None


ON_TIME = timedelta(seconds=15)


def test_every_scheduled_execution_starts_within_seconds_of_its_slot_across_handover_and_restart(
    elastic: Elastic, es_node: EsNode, es_settings: Settings, token: str, tmp_path: Path
) -> None:
    """Rules every 30 s: a SIGTERM handover and a replica joining happen well into a grid cell
    (20 s), where a rule counted from its lease time would run 20 s after its slots."""
    every = timedelta(seconds=30)
    index = f"logs-aws.cloudtrail-ontime-{token}"
    rules = tmp_path / "rules"
    rule_ids = rp.write_rules(rules, index, 4, interval="30s", lookback="40s")
    feeder = rp.Feeder(elastic, index)
    log_index = es_settings.execution_log_index
    with feeder.running():
        slot = rp.wait_for_slot(every, into=1)
        replicas = [
            rp.start_replica(es_node, es_settings, rules, tmp_path, name) for name in ("a", "b")
        ]
        try:
            rp.sleep_until(slot + every + timedelta(seconds=18))
            holders = Counter(rp.lease_holders(elastic, log_index, rule_ids).values())
            leaving = next(r for r in replicas if r.name == holders.most_common(1)[0][0])
            leaving.process.terminate()
            assert leaving.process.wait(timeout=30) == 0
            rp.sleep_until(slot + 2 * every + timedelta(seconds=16))
            replicas.append(rp.start_replica(es_node, es_settings, rules, tmp_path, "c"))
            rp.sleep_until(slot + 3 * every + timedelta(seconds=10))
        finally:
            codes = rp.stop(replicas)
    assert codes == [0, 0, 0]
    docs = [
        doc
        for doc in rp.executions(elastic, log_index)
        if doc["execution"]["type"] == "scheduled" and doc["execution"]["status"] != "running"
    ]
    late = {
        (doc["rule"]["id"], doc["replica"]["id"], doc["execution"]["scheduled"]): (
            parse_time(doc["execution"]["started"]) - parse_time(doc["execution"]["scheduled"])
        ).total_seconds()
        for doc in docs
    }
    print(f"\nstart minus slot: max {max(late.values()):.1f} s over {len(late)} executions")
    assert all(seconds <= ON_TIME.total_seconds() for seconds in late.values()), late
    by = {doc["replica"]["id"] for doc in docs}
    assert by == {"a", "b", "c"}, "no handover or restart happened: the test proves nothing"
    runs = rp.runs_by_rule(docs)
    rp.assert_each_time_once(runs, rule_ids, every)
    assert min(len(times) for times in runs.values()) >= 4
    stored = rp.stored_alerts(elastic, es_settings.alerts_index)
    assert sorted(stored) == sorted(
        rp.expected_alerts(feeder.docs, rp.spec(index, timedelta(seconds=40)), runs)
    )
