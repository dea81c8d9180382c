"""Leases on the real node, in one process: conditional writes, takeover, fencing, release."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from detector.errors import ConflictError
from detector.es.client import Elastic
from detector.execution_log.lease_store import LeaseStore
from detector.execution_log.store import ExecutionStore
from detector.rules import Rule
from detector.service.checkpoints import FENCED, MOVED
from detector.service.replica import Keeper
from detector.settings import Settings
from tests.support.es_node import EsNode
from tests.support.proxy import Proxy
from tests.support.rules import make_rule

RULES = [make_rule(rule_id=f"lease-rule-{n}", query="a: b") for n in range(4)]
T = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


def _store(elastic: Elastic, settings: Settings) -> LeaseStore:
    ExecutionStore(elastic, settings.execution_log_index).ensure_index()
    return LeaseStore(elastic, settings.execution_log_index)


def _keeper(store: LeaseStore, name: str, rules: list[Rule], lease: float = 30) -> Keeper:
    return Keeper(store, rules, name, timedelta(seconds=lease), timedelta(seconds=lease / 3))


def test_a_lease_is_created_once_and_written_only_at_the_version_read(
    elastic: Elastic, es_settings: Settings
) -> None:
    store, rule, now = _store(elastic, es_settings), RULES[0], datetime.now(UTC)
    first = store.write(rule, "a", now=now, expires=now, checkpoint=None, version=None)
    with pytest.raises(ConflictError):
        store.write(rule, "b", now=now, expires=now, checkpoint=None, version=None)
    second = store.write(rule, "a", now=now, expires=now, checkpoint=T, version=first)
    with pytest.raises(ConflictError):
        store.write(rule, "b", now=now, expires=now, checkpoint=None, version=first)
    lease = store.read([rule.rule_id])[rule.rule_id]
    assert (lease.holder, lease.checkpoint, lease.version) == ("a", T, second)


def test_replicas_split_the_rules_and_a_paused_holder_is_fenced_after_a_takeover(
    elastic: Elastic, es_settings: Settings
) -> None:
    store = _store(elastic, es_settings)
    one, two = _keeper(store, "one", RULES, lease=3), _keeper(store, "two", RULES, lease=3)
    for keeper in (one, two):
        keeper.announce()  # heartbeats only; the rounds are run by hand below
    elastic.refresh(store.index)
    one.cycle()
    two.cycle()
    assert len(one.held()) == 2 and len(two.held()) == 2
    rule = next(r for r in RULES if r.rule_id in one.held())
    assert one.may_start(rule.rule_id)
    assert one.move_checkpoint(rule, T) == MOVED
    time.sleep(3.2)  # "one" is paused past its lease: it may not start, "two" takes over
    assert not one.may_start(rule.rule_id)
    two.cycle()
    assert rule.rule_id in two.held() and two.checkpoint(rule.rule_id) == T
    assert one.move_checkpoint(rule, T - timedelta(minutes=5)) == FENCED
    assert one.move_checkpoint(rule, T + timedelta(minutes=10)) == FENCED
    assert store.read([rule.rule_id])[rule.rule_id].checkpoint == T
    assert ExecutionStore(elastic, store.index).checkpoint(rule.rule_id) == T


def test_stop_releases_the_leases_and_another_replica_takes_them_at_once(
    elastic: Elastic, es_settings: Settings
) -> None:
    store = _store(elastic, es_settings)
    leaving, staying = _keeper(store, "leaving", RULES), _keeper(store, "staying", RULES)
    leaving.announce()
    leaving.cycle()
    assert len(leaving.held()) == 4
    leaving.stop()
    assert all(lease.holder is None for lease in store.read([r.rule_id for r in RULES]).values())
    staying.announce()
    elastic.refresh(store.index)
    staying.cycle()
    assert len(staying.held()) == 4


def test_a_lease_renewed_over_a_slow_network_is_fresh_from_its_write_not_the_round_start(
    elastic: Elastic, es_node: EsNode, es_settings: Settings
) -> None:
    """The round's reads (heartbeat, leases, heartbeats: 3 requests of at least 1.8 s each)
    take longer than `may_start`'s margin (lease - renew = 5 s); the lease's expiry is
    computed at its write, so the replica may start right after the round."""
    slow = Proxy(es_node.url, delay=1.8)
    index = _store(elastic, es_settings).index
    through = Elastic(es_settings.model_copy(update={"es_url": [slow.url]}))
    try:
        store = LeaseStore(through, index)
        keeper = Keeper(store, RULES[:1], "slow", timedelta(seconds=6), timedelta(seconds=1))
        began = time.monotonic()
        keeper.cycle()
        assert time.monotonic() - began > 5  # the round outlasted the margin
        assert keeper.held() == [RULES[0].rule_id]
        assert keeper.may_start(RULES[0].rule_id)
    finally:
        through.close()
        slow.close()
