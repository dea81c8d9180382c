"""Cross-cluster search and a multi-node cluster fail closed (real clusters on loopback, marker
`clusters`): a second single-node cluster is the remote `east` of a main node of this module's
own (the shared node is never reconfigured). History held only on `east` keeps a term quiet;
`east` killed (kill -9), the execution fails naming it and alerts nothing, not even the terms
whose history sat there; `east` back, every term alerts exactly once, as the brute-force oracle
says. The same holds within one cluster of three joined nodes when a node holding a shard dies.

Both clusters run with security on and the same file-realm users and roles (scripts/local-es):
the detector's user searches `east` with its own role, resolved by name on the remote."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.alerts.store import AlertStore
from detector.cli import operations
from detector.engine import execute
from detector.errors import DetectorError
from detector.es.client import Elastic
from detector.execution_log.store import ExecutionStore
from detector.explain import explain
from detector.preview import preview
from detector.query.clusters import with_remotes
from detector.service.runner import Runner
from tests.integration.test_engine import T0, event, spec_for, token_rule
from tests.support import cloudtrail as ct
from tests.support.bruteforce import Doc, Simulation
from tests.support.es_node import EsNode, local_es, settings_of, start_local_node
from tests.support.http_faults import FaultProxy
from tests.support.runs import (
    add_events,
    alert_documents,
    alerts_index,
    alerts_of,
    log_docs,
    runner_factory,
)

pytestmark = pytest.mark.clusters

EVERY = timedelta(minutes=5)
QUIET = "198.51.100.10"  # window on the main cluster, history only on east
FRESH = "198.51.100.11"  # new everywhere
REMOTE_ONLY = "198.51.100.12"  # new, its window document only on east
LOST = "198.51.100.13"  # window during the outage, history only on east: must stay quiet
LATE = "198.51.100.14"  # window during the outage on the main cluster: alerts once east is back


class Pair:
    """The main node and its remote `east` (its state file: to kill and revive it)."""

    def __init__(self, main: EsNode, east: EsNode, east_state: Path) -> None:
        self.main, self.east, self.east_state = main, east, east_state

    def kill_east(self) -> None:
        assert local_es(self.east_state, "kill").returncode == 0

    def revive_east(self) -> None:
        revived = local_es(self.east_state, "revive", "--heap", "256m")
        assert revived.returncode == 0, revived.stderr
        # The main node reconnects on its own; `_resolve/cluster` makes it try now.
        with self.main.client() as es:
            for _ in range(60):
                if es.indices.resolve_cluster(name="east:*").body["east"].get("connected"):
                    return
                time.sleep(0.5)
        pytest.fail("the main node did not reconnect to east within 30 s")


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """Started once per module (start-up is the cost), stopped at its end."""
    folder = Path(tempfile.mkdtemp(prefix="detector-test-clusters-"))
    main_state, east_state = folder / "main.json", folder / "east.json"
    try:
        main = start_local_node(main_state, "--heap", "384m")
        east = start_local_node(east_state, "--heap", "256m")
        port = json.loads(east_state.read_text())["transport_port"]
        with main.client() as es:
            remote = {"seeds": [f"127.0.0.1:{port}"], "skip_unavailable": True}
            es.cluster.put_settings(persistent={"cluster.remote.east": remote})
        yield Pair(main, east, east_state)
    finally:
        for state in (east_state, main_state):
            local_es(state, "stop")
        shutil.rmtree(folder, ignore_errors=True)


def elastic_on(node: EsNode, **values: Any) -> Elastic:
    user = node.detector_username, node.detector_password
    return Elastic(
        settings_of(es_url=[node.url], es_username=user[0], es_password=user[1], **values)
    )


@pytest.fixture
def admin(pair: Pair) -> Iterator[tuple[Elastic, Elastic]]:
    """Superuser clients of both clusters, for test data."""
    main = Elastic(
        settings_of(es_url=[pair.main.url], es_username="elastic", es_password=pair.main.password)
    )
    east = Elastic(
        settings_of(es_url=[pair.east.url], es_username="elastic", es_password=pair.east.password)
    )
    yield main, east
    main.close()
    east.close()


def detector_runner(admin: Elastic, detector: Elastic, token: str) -> Runner:
    """A runner searching as the detector's user; its indices made by the superuser (the
    detector's role may not change index settings)."""
    made = runner_factory(admin, token)("ccs")
    alerts = AlertStore(detector, made.records.alerts_index or "")
    return Runner.on(detector, alerts, ExecutionStore(detector, made.executions.index))


def stored(runner: Runner) -> set[tuple[Any, ...]]:
    return {(terms, datetime.fromisoformat(seen)) for terms, seen in alerts_of(runner).values()}


def test_a_lost_remote_fails_the_execution_and_its_return_alerts_each_term_once(
    pair: Pair, admin: tuple[Elastic, Elastic], token: str, caplog: pytest.LogCaptureFixture
) -> None:
    local_index, remote_index = (
        f"logs-aws.cloudtrail-main-{token}",
        f"logs-aws.cloudtrail-east-{token}",
    )
    local_docs = [
        event(QUIET, T0 + timedelta(minutes=2)),
        event(FRESH, T0 + timedelta(minutes=3)),
        event(LOST, T0 + timedelta(minutes=8)),
        event(LATE, T0 + timedelta(minutes=9)),
    ]
    remote_docs = [
        event(QUIET, T0 - timedelta(days=3)),
        event(LOST, T0 - timedelta(days=2)),
        event(REMOTE_ONLY, T0 + timedelta(minutes=4)),
    ]
    add_events(admin[0], local_index, local_docs)
    add_events(admin[1], remote_index, remote_docs)
    rule = token_rule(token)
    detector = elastic_on(pair.main, remote_clusters=["east"])
    runner = detector_runner(admin[0], detector, token)
    oracle = Simulation(
        [Doc(local_index, doc) for doc in local_docs]
        + [Doc(f"east:{remote_index}", doc) for doc in remote_docs],
        spec_for(rule, index_patterns=with_remotes(rule.index, ["east"])),
    )

    first = runner.run_due(rule, T0 + EVERY)
    assert [result.status for result in first] == ["succeeded"]
    expected = {(item.values, item.first_seen) for item in oracle.run(T0 + EVERY)}
    assert stored(runner) == expected
    assert {values for values, _ in expected} == {(FRESH,), (REMOTE_ONLY,)}  # QUIET kept quiet
    by_value = {hit[0]: hit for hit in alerts_of(runner).values()}
    assert (REMOTE_ONLY,) in by_value

    pair.kill_east()
    with caplog.at_level(logging.ERROR, logger="detector.engine.execution"):
        outage = runner.run_due(rule, T0 + 2 * EVERY)
    (line, *_) = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert "east" in line.getMessage()
    assert getattr(line, "unavailable_clusters", None) == ["east"]  # a field of the JSON line
    assert outage and all(result.status == "failed" for result in outage)
    assert "east" in (outage[-1].error or "")
    assert outage[-1].unavailable_clusters == ("east",)
    assert stored(runner) == expected  # no false alert for LOST, nothing at all
    failed = [doc for doc in log_docs(runner) if doc["execution"]["status"] == "failed"]
    assert failed and failed[-1]["execution"]["unavailable_clusters"] == ["east"]

    pair.revive_east()
    back = runner.run_due(rule, T0 + 3 * EVERY)
    assert back and all(result.succeeded for result in back)
    for now in (T0 + 2 * EVERY, T0 + 3 * EVERY):
        expected |= {(item.values, item.first_seen) for item in oracle.run(now)}
    assert stored(runner) == expected
    assert {values for values, _ in expected} == {(FRESH,), (REMOTE_ONLY,), (LATE,)}
    assert len(alerts_of(runner)) == 3  # each exactly once
    detector.close()


def check_output(node: EsNode, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`detector check` with the built-in rules searched on `east` too."""
    values = {"es_username": node.detector_username, "es_password": node.detector_password}
    settings = settings_of(es_url=[node.url], remote_clusters=["east"], **values)
    code = operations.check(argparse.Namespace(wait=None), settings)
    return code, capsys.readouterr().out


def test_check_exits_1_naming_a_remote_that_is_not_connected(
    pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check_output(pair.main, capsys)
    assert "remote cluster east: connected, skip_unavailable: true, version: " in out
    assert "east:logs-aws.cloudtrail*" in out
    pair.kill_east()
    try:
        code, out = check_output(pair.main, capsys)
        assert code == 1
        assert "remote cluster east: NOT connected" in out
        assert "error: remote cluster east is not connected" in out
    finally:
        pair.revive_east()


def test_a_remote_costs_no_request(pair: Pair, admin: tuple[Elastic, Elastic], token: str) -> None:
    """Every phase is one search whatever the clusters (`ccs_minimize_roundtrips`)."""
    local_index, remote_index = (
        f"logs-aws.cloudtrail-main-{token}",
        f"logs-aws.cloudtrail-east-{token}",
    )
    add_events(admin[0], local_index, [event(FRESH, T0 + timedelta(minutes=3))])
    add_events(admin[1], remote_index, [event(REMOTE_ONLY, T0 + timedelta(minutes=4))])
    port = json.loads(pair.east_state.read_text())["transport_port"]
    with pair.main.client() as es:  # `west`: a second alias of the same remote
        es.cluster.put_settings(persistent={"cluster.remote.west.seeds": [f"127.0.0.1:{port}"]})
    rule = token_rule(token)
    store = AlertStore(admin[0], f"detector-alerts-{token}-cost")
    counts = {}
    for remotes in ([], ["east"], ["east", "west"]):
        elastic = elastic_on(pair.main, remote_clusters=remotes)
        result = execute(elastic, store, rule, T0 + EVERY, dry_run=True)
        assert result.succeeded, result.error
        counts[len(remotes)] = (result.requests, result.new_terms)
        elastic.close()
    print(f"requests per execution by remotes: {counts}")
    assert counts[0][0] == counts[1][0] == counts[2][0]
    assert (counts[0][1], counts[1][1]) == (1, 2)


def test_explain_preview_and_the_alert_read_the_remote_as_the_engine_does(
    pair: Pair, admin: tuple[Elastic, Elastic], token: str
) -> None:
    """`explain` and `preview` search the rule's patterns on `east` too, name the remote index
    (`east:<index>`) as the alert does, and fail naming `east` while it is lost."""
    local_index, remote_index = (
        f"logs-aws.cloudtrail-main-{token}",
        f"logs-aws.cloudtrail-east-{token}",
    )
    local_docs = [event(QUIET, T0 + timedelta(minutes=2)), event(FRESH, T0 + timedelta(minutes=3))]
    add_events(admin[0], local_index, local_docs)
    remote_docs = [
        event(QUIET, T0 - timedelta(days=3)),
        event(REMOTE_ONLY, T0 + timedelta(minutes=4)),
    ]
    add_events(admin[1], remote_index, remote_docs)
    rule, now, on_east = token_rule(token), T0 + EVERY, f"east:{remote_index}"
    detector = elastic_on(pair.main, remote_clusters=["east"])
    runner = detector_runner(admin[0], detector, token)
    alerts = AlertStore(detector, alerts_index(runner))

    previewed = preview(detector, rule, now, now)
    by_value = {alert.values: alert for alert in previewed.alerts}
    assert set(by_value) == {(FRESH,), (REMOTE_ONLY,)}
    assert (by_value[(REMOTE_ONLY,)].document or ("", ""))[0] == on_east
    quiet = explain(detector, alerts, rule, now, (QUIET,))
    assert not quiet.new and quiet.last_history is not None
    assert quiet.last_history.index == on_east
    remote = explain(detector, alerts, rule, now, (REMOTE_ONLY,))
    assert remote.new and remote.first_document is not None
    assert remote.first_document.index == on_east

    assert [result.status for result in runner.run_due(rule, now)] == ["succeeded"]
    assert stored(runner) == {alert.key for alert in previewed.alerts}
    by_terms = {
        tuple(doc["kibana"]["alert"]["new_terms"]): doc for doc in alert_documents(runner).values()
    }
    assert by_terms[(REMOTE_ONLY,)]["kibana"]["alert"]["ancestors"][0]["index"] == on_east

    pair.kill_east()
    try:
        with pytest.raises(DetectorError, match="east"):
            preview(detector, rule, now, now)
        with pytest.raises(DetectorError, match="east"):
            explain(detector, alerts, rule, now, (QUIET,))
    finally:
        pair.revive_east()
        detector.close()


# --- three joined nodes -------------------------------------------------------------------------


class Trio:
    """A cluster of three joined nodes (its state file: to kill and revive one)."""

    def __init__(self, node: EsNode, state: Path) -> None:
        self.node, self.state = node, state

    def victim(self, index: str) -> int:
        """A node holding a copy of `index` to kill, a primary where one may: neither the node
        the clients talk to (node 0) nor the elected master (an election would only slow the
        test)."""
        with self.node.client() as es:
            master = es.cluster.state(metric="master_node").body["master_node"]
            placement = es.search_shards(index=index).body
        names = {node_id: node["name"] for node_id, node in placement["nodes"].items()}
        copies = [copy for copies in placement["shards"] for copy in copies]
        copies.sort(key=lambda copy: not copy["primary"])
        for copy in copies:
            if copy["node"] != master and names[copy["node"]] != "local-es-0":
                return int(names[copy["node"]].rsplit("-", 1)[1])
        pytest.fail(f"no copy of {index} on a node other than node 0 and the master")

    def kill(self, node: int) -> None:
        killed = local_es(self.state, "kill", "--node", str(node))
        assert killed.returncode == 0, killed.stderr

    def revive(self, node: int) -> None:
        """Start the node again and wait until every shard is assigned (green)."""
        revived = local_es(self.state, "revive", "--node", str(node), "--heap", "256m")
        assert revived.returncode == 0, revived.stderr
        wait_for(self.node, "green")


def wait_for(node: EsNode, status: str, index: str | None = None) -> None:
    """Wait until the cluster (or `index`) is `status`; else fail saying why a shard is not."""
    with node.client() as es:
        health = es.options(request_timeout=100, ignore_status=408).cluster.health(
            index=index, wait_for_status=status, timeout="90s"
        )
        if health.body["timed_out"]:
            why = es.cluster.allocation_explain(include_yes_decisions=False).body
            pytest.fail(f"not {status} within 90 s: {json.dumps(why)[:2000]}")


@pytest.fixture(scope="module")
def trio() -> Iterator[Trio]:
    """Three nodes of 256 MB heap each, started once per module, stopped at its end."""
    folder = Path(tempfile.mkdtemp(prefix="detector-test-trio-"))
    state = folder / "trio.json"
    try:
        began = time.monotonic()
        node = start_local_node(state, "--nodes", "3", "--heap", "256m")
        print(f"three nodes started in {time.monotonic() - began:.0f} s")
        yield Trio(node, state)
    finally:
        local_es(state, "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def trio_admin(trio: Trio) -> Iterator[Elastic]:
    """A superuser client of the three-node cluster (through node 0), for test data."""
    values = {"es_username": "elastic", "es_password": trio.node.password}
    elastic = Elastic(settings_of(es_url=[trio.node.url], **values))
    yield elastic
    elastic.close()


def spread_index(trio: Trio, name: str, replicas: int) -> list[str]:
    """Create a CloudTrail index of three primaries (without replicas: one per node) with
    `replicas` copies each; for each shard a routing value that lands a document there."""
    settings: dict[str, Any] = {"number_of_shards": 3, "number_of_replicas": replicas}
    if not replicas:
        # With replicas the limit can leave a copy unassigned (the allocator does not backtrack).
        settings["routing.allocation.total_shards_per_node"] = 1
    with trio.node.client() as es:
        es.indices.create(index=name, settings=settings, mappings=ct.INDEX_BODY["mappings"])
        wait_for(trio.node, "green", name)
        routes: dict[int, str] = {}
        for candidate in map(str, range(1000)):
            shard = es.search_shards(index=name, routing=candidate).body["shards"][0][0]["shard"]
            routes.setdefault(int(shard), candidate)
            if len(routes) == 3:
                return [routes[shard] for shard in range(3)]
    pytest.fail(f"no routing value found for every shard of {name}")


def add_routed(
    trio: Trio, index: str, placed: list[tuple[int, dict[str, Any]]], routes: list[str]
) -> None:
    """Index each document on the shard it names (custom routing), searchable on return."""
    operations: list[dict[str, Any]] = []
    for number, (shard, doc) in enumerate(placed):
        operations += [
            {"create": {"_index": index, "_id": f"doc-{number}", "routing": routes[shard]}},
            doc,
        ]
    with trio.node.client() as es:
        answer = es.bulk(operations=operations, refresh=True).body
    assert not answer["errors"], answer


def tally(runner: Runner, expected: set[tuple[Any, ...]]) -> tuple[int, int, int]:
    """(lost, duplicated, unexpected) alerts of the runner against the oracle's."""
    written = list(alerts_of(runner).values())
    found = {(terms, datetime.fromisoformat(seen)) for terms, seen in written}
    duplicated = len(written) - len({terms for terms, _ in written})
    return len(expected - found), duplicated, len(found - expected)


def address(kind: int, shard: int) -> str:
    return f"203.0.113.{10 * kind + shard}"


def test_a_lost_node_fails_the_execution_on_its_shards_and_its_return_alerts_each_term_once(
    trio: Trio, trio_admin: Elastic, token: str
) -> None:
    """No replicas: the shard of a killed node is gone until it returns. The execution fails
    naming the index instead of alerting terms whose history sat on that shard."""
    index = f"logs-aws.cloudtrail-trio-{token}"
    routes = spread_index(trio, index, replicas=0)
    placed: list[tuple[int, dict[str, Any]]] = []
    for shard in range(3):
        # EARLY: new before the outage. KNOWN: history on this shard, window on the next one.
        # HELD: the same during the outage. NEW: new during the outage, window on this shard.
        placed += [
            (shard, event(address(1, shard), T0 + timedelta(minutes=3))),
            (shard, event(address(2, shard), T0 - timedelta(days=2))),
            ((shard + 1) % 3, event(address(2, shard), T0 + timedelta(minutes=2))),
            (shard, event(address(3, shard), T0 - timedelta(days=3))),
            ((shard + 1) % 3, event(address(3, shard), T0 + timedelta(minutes=8))),
            (shard, event(address(4, shard), T0 + timedelta(minutes=9))),
        ]
    add_routed(trio, index, placed, routes)
    rule = token_rule(token)
    runner = runner_factory(trio_admin, token)("trio")
    oracle = Simulation([Doc(index, doc) for _, doc in placed], spec_for(rule))

    first = runner.run_due(rule, T0 + EVERY)
    assert [result.status for result in first] == ["succeeded"]
    expected = {(item.values, item.first_seen) for item in oracle.run(T0 + EVERY)}
    assert {values for values, _ in expected} == {(address(1, s),) for s in range(3)}
    assert tally(runner, expected) == (0, 0, 0)

    victim = trio.victim(index)
    trio.kill(victim)
    try:
        outage = runner.run_due(rule, T0 + 2 * EVERY)
        assert outage and all(result.status == "failed" for result in outage)
        assert index in (outage[-1].error or "")
        assert tally(runner, expected) == (0, 0, 0)  # none at all, not for HELD on the lost shard
    finally:
        trio.revive(victim)

    back = runner.run_due(rule, T0 + 3 * EVERY)
    assert back and all(result.succeeded for result in back)
    for now in (T0 + 2 * EVERY, T0 + 3 * EVERY):
        expected |= {(item.values, item.first_seen) for item in oracle.run(now)}
    assert {values for values, _ in expected} == {
        (address(kind, s),) for kind in (1, 4) for s in range(3)
    }
    assert tally(runner, expected) == (0, 0, 0)


def known_and_new(trio: Trio, index: str, replicas: int) -> list[dict[str, Any]]:
    """`index` spread over the nodes with, for each shard, KNOWN (history on this shard, window
    on the next one) and NEW (window on this shard); the documents, for the oracle."""
    routes = spread_index(trio, index, replicas)
    placed: list[tuple[int, dict[str, Any]]] = []
    for shard in range(3):
        placed += [
            (shard, event(address(2, shard), T0 - timedelta(days=2))),
            ((shard + 1) % 3, event(address(2, shard), T0 + timedelta(minutes=2))),
            (shard, event(address(1, shard), T0 + timedelta(minutes=3))),
        ]
    add_routed(trio, index, placed, routes)
    return [doc for _, doc in placed]


def test_a_lost_node_with_replicas_fails_over_and_never_alerts_a_partial_history(
    trio: Trio, trio_admin: Elastic, token: str
) -> None:
    """One replica per shard: right after a node dies its shards fail over to their copies;
    the execution then succeeds as the oracle says or fails alerting nothing, and once the
    copies are promoted every term alerts exactly once."""
    index = f"logs-aws.cloudtrail-replicas-{token}"
    docs = known_and_new(trio, index, replicas=1)
    rule = token_rule(token)
    runner = runner_factory(trio_admin, token)("replicas")
    oracle = Simulation([Doc(index, doc) for doc in docs], spec_for(rule))

    victim = trio.victim(index)
    trio.kill(victim)
    try:
        during = runner.run_due(rule, T0 + EVERY)
        expected = {(item.values, item.first_seen) for item in oracle.run(T0 + EVERY)}
        assert [result.status for result in during] in (["succeeded"], ["failed"])
        print(f"the execution during the failover: {during[-1].status} {during[-1].error or ''}")
        if during[-1].succeeded:
            assert tally(runner, expected) == (0, 0, 0)
        else:
            assert alerts_of(runner) == {}
        wait_for(trio.node, "yellow", index)  # every primary promoted
        after = runner.run_due(rule, T0 + 2 * EVERY)
        assert after and all(result.succeeded for result in after)
        expected |= {(item.values, item.first_seen) for item in oracle.run(T0 + 2 * EVERY)}
        assert {values for values, _ in expected} == {(address(1, s),) for s in range(3)}
        assert tally(runner, expected) == (0, 0, 0)
    finally:
        trio.revive(victim)


def test_a_node_lost_during_an_execution_fails_it_and_its_return_alerts_each_term_once(
    trio: Trio, trio_admin: Elastic, token: str
) -> None:
    """No replicas; the node dies in the middle of an execution, after its window search was
    answered by every shard and before its next search: the history searched without the
    node's shard would make KNOWN new, so the execution fails instead of alerting."""
    index = f"logs-aws.cloudtrail-during-{token}"
    docs = known_and_new(trio, index, replicas=0)
    rule = token_rule(token)
    oracle = Simulation([Doc(index, doc) for doc in docs], spec_for(rule))
    victim = trio.victim(index)
    searches: list[str] = []

    def kill_after_the_window_search(path: str, body: bytes) -> None:
        if "logs-aws.cloudtrail" in path and "/_search" in path:
            searches.append(path)
            if len(searches) == 2:
                trio.kill(victim)

    proxy = FaultProxy(trio.node.url, on_request=kill_after_the_window_search)
    values = {"es_username": "elastic", "es_password": trio.node.password}
    through_proxy = Elastic(settings_of(es_url=[proxy.url], es_retry_attempts=1, **values))
    runner = runner_factory(through_proxy, token)("during")
    try:
        during = runner.run_due(rule, T0 + EVERY)
        assert len(searches) >= 2, searches  # the node died within the execution
        assert during and all(result.status == "failed" for result in during)
        assert index in (during[-1].error or "")
        assert alerts_of(runner) == {}  # not KNOWN, whose history sat on the lost shard
    finally:
        trio.revive(victim)
        proxy.close()

    back = runner.run_due(rule, T0 + 2 * EVERY)
    assert back and all(result.succeeded for result in back)
    expected = set()
    for now in (T0 + EVERY, T0 + 2 * EVERY):
        expected |= {(item.values, item.first_seen) for item in oracle.run(now)}
    assert {values for values, _ in expected} == {(address(1, s),) for s in range(3)}
    assert tally(runner, expected) == (0, 0, 0)
    through_proxy.close()
