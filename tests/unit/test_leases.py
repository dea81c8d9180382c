"""The pure lease decisions: grid, fair share, who renews, releases and takes what."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from detector.errors import ConfigError
from detector.schedule import leases
from detector.schedule.leases import Lease, Version
from detector.settings import Settings, load_settings

NOW = datetime(2025, 1, 15, 12, 0, 7, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)
V = Version(1, 1)


def test_the_grid_is_multiples_of_the_interval_since_the_epoch() -> None:
    assert leases.grid_floor(NOW, timedelta(seconds=5)) == NOW.replace(second=5)
    assert leases.grid_floor(NOW, timedelta(minutes=5)) == NOW.replace(second=0)
    assert leases.grid_floor(NOW.replace(second=5), timedelta(seconds=5)) == NOW.replace(second=5)
    # 7-minute grid: 2025-01-15T12:00:07 is 29,078,400 + ... minutes; any moment maps into its cell
    floor = leases.grid_floor(NOW, timedelta(minutes=7))
    assert floor <= NOW < floor + timedelta(minutes=7)
    assert (floor - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(minutes=7) == timedelta(0)
    with pytest.raises(ValueError, match="positive"):
        leases.grid_floor(NOW, timedelta(0))


@pytest.mark.parametrize(
    ("rules", "replicas", "share"), [(12, 3, 4), (12, 5, 3), (1, 3, 1), (0, 2, 0), (7, 0, 7)]
)
def test_fair_share_is_the_ceiling(rules: int, replicas: int, share: int) -> None:
    assert leases.fair_share(rules, replicas) == share


def test_a_lease_is_free_when_unheld_or_expired() -> None:
    assert Lease("r").free(NOW)
    assert not Lease("r", "a", NOW + timedelta(seconds=1), version=V).free(NOW)
    assert Lease("r", "a", NOW, version=V).free(NOW)


def test_live_replicas_are_heartbeats_holders_and_me() -> None:
    held = [Lease("r1", "b", LATER, version=V), Lease("r2", "dead", NOW, version=V)]
    beats = {"a": LATER, "gone": NOW - timedelta(seconds=1)}
    assert leases.live_replicas(beats, held, "me", NOW) == {"a", "b", "me"}


def rules(count: int) -> list[str]:
    return [f"rule-{n}" for n in range(count)]


def test_alone_a_replica_takes_every_free_lease() -> None:
    decision = leases.decide("a", [Lease(r) for r in rules(12)], {"a"}, NOW)
    assert sorted(decision.take) == sorted(rules(12))
    assert decision.release == () and decision.renew == ()


def test_with_three_live_replicas_each_takes_at_most_its_share() -> None:
    decision = leases.decide("a", [Lease(r) for r in rules(12)], {"a", "b", "c"}, NOW)
    assert len(decision.take) == 4


def test_a_replica_above_its_share_releases_the_surplus_but_never_a_running_rule() -> None:
    held = [Lease(r, "a", LATER, version=V) for r in rules(12)]
    decision = leases.decide("a", held, {"a", "b", "c"}, NOW, busy={"rule-0", "rule-1"})
    assert len(decision.release) == 8 and len(decision.renew) == 4
    assert {"rule-0", "rule-1"} <= set(decision.renew)
    assert decision.take == ()


def test_a_running_surplus_rule_is_kept_until_it_finishes() -> None:
    held = [Lease(r, "a", LATER, version=V) for r in rules(4)]
    decision = leases.decide("a", held, {"a", "b", "c", "d"}, NOW, busy=set(rules(4)))
    assert sorted(decision.renew) == rules(4) and decision.release == ()


def test_held_leases_of_others_are_left_alone_and_expired_ones_taken() -> None:
    others = [Lease(r, "b", LATER, version=V) for r in rules(6)]
    expired = [Lease(f"x-{n}", "dead", NOW, version=V) for n in range(6)]
    decision = leases.decide("a", [*others, *expired], {"a", "b"}, NOW)
    assert sorted(decision.take) == sorted(lease.rule_id for lease in expired)


def test_replicas_deciding_alone_converge_to_a_spread() -> None:
    """Round after round, replicas see each other's leases: none ends above its share."""
    replicas, names = ["a", "b", "c"], rules(12)
    holder: dict[str, str | None] = dict.fromkeys(names)
    holder.update(dict.fromkeys(names, "a"))  # the first replica started alone and took all
    for _ in range(3):
        for me in replicas:
            current = [Lease(r, holder[r], LATER if holder[r] else None, version=V) for r in names]
            decision = leases.decide(me, current, set(replicas), NOW)
            for rule_id in decision.release:
                holder[rule_id] = None
            for rule_id in decision.take:
                holder[rule_id] = me
    counts = Counter(holder.values())
    assert counts == {"a": 4, "b": 4, "c": 4}


def test_preferences_spread_rules_between_replicas() -> None:
    firsts = Counter(
        max(["a", "b", "c"], key=lambda replica: leases.score(replica, rule)) for rule in rules(300)
    )
    assert all(count > 60 for count in firsts.values())


def test_lease_documents_round_trip() -> None:
    doc = leases.lease_doc("r", "Rule", "a", now=NOW, expires=LATER, checkpoint=NOW)
    assert doc["kind"] == "lease" and doc["replica"] == {"id": "a"}
    assert leases.parse_lease("r", doc, V) == Lease("r", "a", LATER, NOW.replace(microsecond=0), V)
    assert leases.parse_lease("r", None, None) == Lease("r")
    beat = leases.replica_doc("a", NOW, LATER, 3)
    assert leases.parse_heartbeat(beat) == ("a", LATER)
    assert leases.parse_heartbeat({"kind": "replica"}) is None
    assert leases.lease_id("r") == "lease:r" and leases.replica_doc_id("a") == "replica:a"


def test_lease_settings_default_and_refuse_a_renewal_slower_than_half_the_lease() -> None:
    settings = Settings(_env_file=None)
    assert settings.lease_seconds == timedelta(seconds=60)
    assert settings.renew_delta == timedelta(seconds=20)
    with pytest.raises(ConfigError, match="DETECTOR_LEASE_RENEW_SECONDS"):
        load_settings(lease_seconds=10, lease_renew_seconds=6)
    with pytest.raises(ConfigError, match="DETECTOR_LEASE_SECONDS"):
        load_settings(lease_seconds=1)
