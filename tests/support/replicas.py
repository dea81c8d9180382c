"""`detector run` replicas as real processes, the sources they watch, and what they wrote.

The checks the replica tests share: every scheduled time of every rule ran exactly once (among
the successful, unfenced executions of the log) on the rule's grid without a hole, and the
alerts written are exactly the brute-force oracle's for those times.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from detector.es.client import Elastic
from detector.rules import builtin_rules
from detector.schedule.leases import grid_floor
from detector.settings import Settings
from tests.support import cloudtrail as ct
from tests.support.bruteforce import Doc, Simulation, Spec, is_anonymous_s3_access, parse_time
from tests.support.commands import detector_env
from tests.support.es_node import EsNode

REPO = Path(__file__).resolve().parents[2]
BUILTIN_ID = "59bf26c2-bcbe-11ef-a215-f661ea17fbce"
SUCCESSFUL = ("succeeded", "partial failure")
ORIGINAL_INDEX = 'index = ["filebeat-*", "logs-aws.cloudtrail*"]'
# Sources are written with an `event.ingested` this far ahead of the wall clock, and refreshed
# at once: every execution whose window holds a document starts after it is searchable, so the
# oracle (which sees every document) states exactly what each execution can see.
AHEAD = timedelta(seconds=2)


def write_rules(
    directory: Path, index: str, count: int, interval: str = "5s", lookback: str = "8s"
) -> list[str]:
    """`count` copies of the built-in rule over `index`, each with its own rule id, on a short
    interval and look-back; returns their ids."""
    source = next(rule for rule in builtin_rules() if rule.rule_id == BUILTIN_ID).source
    assert source is not None
    text = source.read_text(encoding="utf-8")
    directory.mkdir(parents=True, exist_ok=True)
    ids = []
    for number in range(count):
        rule_id = f"replica-rule-{number:02d}"
        changed = (
            text.replace(BUILTIN_ID, rule_id)
            .replace(
                'index = ["filebeat-*", "logs-aws.cloudtrail*"]', f"index = {json.dumps([index])}"
            )
            .replace('interval = "5m"', f'interval = "{interval}"')
            .replace('from = "now-9m"', f'from = "now-{lookback}"')
        )
        (directory / f"{rule_id}.toml").write_text(changed, encoding="utf-8")
        ids.append(rule_id)
    return ids


def spec(index: str, lookback: timedelta = timedelta(seconds=8)) -> Spec:
    """The oracle's restatement of those rules."""
    return Spec(
        index_patterns=[index],
        fields=["source.address"],
        predicate=is_anonymous_s3_access,
        lookback=lookback,
        history=timedelta(days=7),
        override="event.ingested",
    )


@dataclass
class Replica:
    """One `detector run` process and its log file."""

    name: str
    process: subprocess.Popen[str]
    log: Path

    def records(self) -> list[dict[str, Any]]:
        """Its JSON log records so far."""
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None


def command_env(node: EsNode, settings: Settings, rules: Path) -> dict[str, str]:
    """The environment of a `detector` command on `node` over the rule files in `rules`, with
    this test's execution log (and none of the caller's DETECTOR_* variables)."""
    return detector_env(
        node,
        DETECTOR_EXECUTION_LOG_INDEX=settings.execution_log_index,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
    )


def start_replica(
    node: EsNode,
    settings: Settings,
    rules: Path,
    directory: Path,
    name: str,
    *,
    url: str | None = None,
    lease: float = 6,
    renew: float = 2,
    extra: dict[str, str] | None = None,
) -> Replica:
    """`detector run` as the replica `name`, with short leases, through `url` if given (and
    the `extra` variables)."""
    env = detector_env(
        node,
        DETECTOR_ES_URL=url or node.url,
        DETECTOR_ALERTS_INDEX=settings.alerts_index,
        DETECTOR_EXECUTION_LOG_INDEX=settings.execution_log_index,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
        DETECTOR_LOG_FORMAT="json",
        DETECTOR_REPLICA_ID=name,
        DETECTOR_LEASE_SECONDS=str(lease),
        DETECTOR_LEASE_RENEW_SECONDS=str(renew),
        DETECTOR_ES_RETRY_MAX_SECONDS="10",
        **(extra or {}),
    )
    log = directory / f"{name}.log"
    with log.open("w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "detector", "run"],
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return Replica(name, process, log)


def stop(replicas: Sequence[Replica], timeout: float = 60) -> list[int | None]:
    """SIGTERM every live replica and wait; their exit codes (None if killed before)."""
    for replica in replicas:
        if replica.alive():
            replica.process.terminate()
    return [replica.process.wait(timeout=timeout) for replica in replicas]


def kill(replica: Replica, timeout: float = 30) -> None:
    """SIGKILL the replica if it still runs, and reap it (a `Popen` collected while its
    process runs is a ResourceWarning, an error under the suite's filterwarnings)."""
    if replica.alive():
        replica.process.kill()
    replica.process.wait(timeout=timeout)


@dataclass
class Feeder:
    """New anonymous sources arriving into `index` while the replicas run, one every `every`
    seconds, and now and then an old source again (in its history: never new again)."""

    elastic: Elastic
    index: str
    every: float = 1.0
    docs: list[Doc] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _feed(self) -> None:
        for number in itertools.count():
            if self._stop.wait(self.every):
                return
            at = datetime.now(UTC) + AHEAD
            third = number % 3 == 2 and number > 10
            address = f"198.51.{number // 250}.{number % 250}" if not third else self.old(number)
            doc = ct.anonymous_s3_event(address, at=at)
            ids = {f"feed-{number}": doc}
            self.elastic.bulk_create(self.index, ids, refresh=True)
            self.docs.append(Doc(self.index, doc))

    def old(self, number: int) -> str:
        """A source seen some ten documents before."""
        earlier = number - 10
        return f"198.51.{earlier // 250}.{earlier % 250}"

    @contextmanager
    def running(self) -> Iterator[Feeder]:
        """Feed on a thread while in the block."""
        ct.create_index(self.elastic, self.index)
        thread = threading.Thread(target=self._feed, name="feeder", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=30)


def executions(elastic: Elastic, index: str) -> list[dict[str, Any]]:
    """Every execution document of the log."""
    elastic.refresh(index)
    body = {"size": 10000, "query": {"term": {"kind": "execution"}}}
    return [hit["_source"] for hit in elastic.search([index], body)["hits"]["hits"]]


def runs_by_rule(docs: Sequence[dict[str, Any]]) -> dict[str, list[datetime]]:
    """Rule id -> scheduled times of its successful, unfenced executions, sorted."""
    runs: dict[str, list[datetime]] = {}
    for doc in docs:
        if doc["execution"]["status"] in SUCCESSFUL and not doc["replica"]["fenced"]:
            runs.setdefault(doc["rule"]["id"], []).append(parse_time(doc["execution"]["scheduled"]))
    return {rule_id: sorted(times) for rule_id, times in runs.items()}


def assert_each_time_once(
    runs: dict[str, list[datetime]], rule_ids: Sequence[str], interval: timedelta
) -> None:
    """Every rule ran each time of its grid exactly once, from its first to its last."""
    assert sorted(runs) == sorted(rule_ids)
    for rule_id, times in runs.items():
        repeated = [moment for moment, count in Counter(times).items() if count > 1]
        assert not repeated, f"{rule_id} ran {repeated} more than once"
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        assert all((moment - epoch) % interval == timedelta(0) for moment in times), rule_id
        holes = [a for a, b in itertools.pairwise(times) if b - a != interval]
        assert not holes, f"{rule_id} skipped the time(s) after {holes}"


def stored_alerts(elastic: Elastic, index: str) -> list[tuple[str, tuple[Any, ...], datetime]]:
    """(rule id, new terms, first seen) of every alert written."""
    elastic.refresh(index)
    hits = elastic.search([index], {"size": 10000})["hits"]["hits"]
    return [
        (
            hit["_source"]["kibana"]["alert"]["rule"]["rule_id"],
            tuple(hit["_source"]["kibana"]["alert"]["new_terms"]),
            parse_time(hit["_source"]["detector"]["first_seen"]),
        )
        for hit in hits
    ]


def expected_alerts(
    docs: Sequence[Doc], oracle: Spec, runs: dict[str, list[datetime]]
) -> list[tuple[str, tuple[Any, ...], datetime]]:
    """What the oracle alerts for each rule's scheduled times."""
    expected = []
    for rule_id, times in runs.items():
        simulation = Simulation(list(docs), oracle)
        for now in times:
            expected += [(rule_id, item.values, item.first_seen) for item in simulation.run(now)]
    return expected


def lease_holders(elastic: Elastic, index: str, rule_ids: Sequence[str]) -> dict[str, str | None]:
    """Rule id -> the replica holding its unexpired lease (None if free)."""
    now = datetime.now(UTC)
    found = elastic.mget_versioned(index, [f"lease:{rule_id}" for rule_id in rule_ids])
    holders: dict[str, str | None] = dict.fromkeys(rule_ids)
    for rule_id in rule_ids:
        doc = found.get(f"lease:{rule_id}")
        if doc is not None and parse_time(doc.source["lease"]["expires"]) > now:
            holders[rule_id] = doc.source["replica"]["id"]
    return holders


def wait_until(condition: Any, timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll `condition()` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sleep_until(moment: datetime) -> None:
    """Sleep until the wall clock reaches `moment` (at once if it has)."""
    time.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0))


def wait_for_slot(interval: timedelta, into: float = 0) -> datetime:
    """Sleep until `into` seconds after the next grid slot of `interval`; that slot."""
    now = datetime.now(UTC)
    slot = grid_floor(now, interval) + interval
    sleep_until(slot + timedelta(seconds=into))
    return slot
