"""Leases per rule, so several `detector run` replicas run each scheduled execution once. Pure.

Elasticsearch is the coordinator, as in Kibana's Task Manager: a task is claimed by updating its
document with `if_seq_no`/`if_primary_term` (optimistic concurrency), and the claim lasts until
`retryAt`. Here each rule has one lease document (`lease:<rule id>` in the execution-log index)
naming its holder, until when the lease holds (`lease.expires`) and the rule's checkpoint. A
replica creates it (`op_type: create`), renews it, takes it over once expired, and moves the
checkpoint, each time conditionally on the version it last wrote: a replica that lost its lease
cannot move the checkpoint (it is *fenced*). No script is involved, so it works on clusters
without Painless.

Replicas announce themselves with a heartbeat document (`replica:<id>`, with an expiry), so each
knows how many replicas are live and takes at most its fair share of the rules,
`ceil(rules / live replicas)`; a replica above its share releases the surplus. Which rules a
replica prefers is rendezvous hashing of (replica, rule), so shares are stable and spread.

Scheduled times form one grid per rule: the multiples of its interval since the epoch, so
whichever replica holds the lease runs the same times.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from detector.times import iso, parse_iso

LEASE = "lease"
REPLICA = "replica"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Version:
    """`_seq_no` and `_primary_term` of a document: what a conditional write is checked on."""

    seq_no: int
    primary_term: int


@dataclass(frozen=True)
class Lease:
    """A rule's lease as stored: holder, expiry, checkpoint; `version` None when no document."""

    rule_id: str
    holder: str | None = None
    expires: datetime | None = None
    checkpoint: datetime | None = None
    version: Version | None = None

    def free(self, now: datetime) -> bool:
        """Nobody holds it, or its holder did not renew it in time."""
        return self.holder is None or self.expires is None or self.expires <= now


@dataclass(frozen=True)
class Decision:
    """What a replica does with the leases this round."""

    renew: tuple[str, ...]
    release: tuple[str, ...]
    take: tuple[str, ...]


def lease_id(rule_id: str) -> str:
    """The id of a rule's lease document."""
    return f"{LEASE}:{rule_id}"


def replica_doc_id(replica: str) -> str:
    """The id of a replica's heartbeat document."""
    return f"{REPLICA}:{replica}"


def grid_floor(moment: datetime, interval: timedelta) -> datetime:
    """The latest multiple of `interval` since the epoch at or before `moment`."""
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    steps = (moment - _EPOCH) // interval
    return _EPOCH + steps * interval


def fair_share(rules: int, replicas: int) -> int:
    """How many leases one replica may hold: `ceil(rules / replicas)`."""
    return math.ceil(rules / max(replicas, 1))


def score(replica: str, rule_id: str) -> int:
    """Rendezvous-hashing weight: higher means this replica prefers this rule."""
    digest = hashlib.sha256(f"{replica}\x00{rule_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def live_replicas(
    heartbeats: Mapping[str, datetime], leases: Collection[Lease], me: str, now: datetime
) -> set[str]:
    """Replicas whose heartbeat or some lease has not expired, and this one."""
    live = {replica for replica, expires in heartbeats.items() if expires > now}
    live.update(lease.holder for lease in leases if lease.holder and not lease.free(now))
    return live | {me}


def decide(
    me: str,
    leases: Collection[Lease],
    live: Collection[str],
    now: datetime,
    busy: Collection[str] = (),
) -> Decision:
    """Renew what this replica holds up to its fair share, release the surplus (never a rule
    whose execution is running), take free leases until the share is reached."""
    share = fair_share(len(leases), len(live))
    mine = sorted(
        (lease.rule_id for lease in leases if lease.holder == me),
        key=lambda rule_id: (rule_id in busy, score(me, rule_id)),
        reverse=True,
    )
    keep, surplus = mine[:share], mine[share:]
    release = tuple(rule_id for rule_id in surplus if rule_id not in busy)
    kept = [*keep, *(rule_id for rule_id in surplus if rule_id in busy)]
    free = [lease.rule_id for lease in leases if lease.holder != me and lease.free(now)]
    free.sort(key=lambda rule_id: score(me, rule_id), reverse=True)
    take = tuple(free[: max(share - len(kept), 0)])
    return Decision(renew=tuple(kept), release=release, take=take)


def lease_doc(
    rule_id: str,
    rule_name: str,
    holder: str | None,
    *,
    now: datetime,
    expires: datetime,
    checkpoint: datetime | None,
) -> dict[str, Any]:
    """The lease document of a rule (also its checkpoint)."""
    return {
        "@timestamp": iso(now),
        "kind": LEASE,
        "rule": {"id": rule_id, "name": rule_name},
        "replica": {"id": holder},
        "lease": {"expires": iso(expires), "renewed": iso(now)},
        "checkpoint": iso(checkpoint) if checkpoint is not None else None,
    }


def parse_lease(rule_id: str, source: Mapping[str, Any] | None, version: Version | None) -> Lease:
    """A lease from its stored document (None: there is none yet)."""
    if source is None:
        return Lease(rule_id)
    return Lease(
        rule_id,
        holder=(source.get("replica") or {}).get("id"),
        expires=parse_iso((source.get("lease") or {}).get("expires")),
        checkpoint=parse_iso(source.get("checkpoint")),
        version=version,
    )


def replica_doc(replica: str, now: datetime, expires: datetime, held: int) -> dict[str, Any]:
    """A replica's heartbeat: it is live until `expires`."""
    return {
        "@timestamp": iso(now),
        "kind": REPLICA,
        "replica": {"id": replica, "leases": held},
        "lease": {"expires": iso(expires), "renewed": iso(now)},
    }


def parse_heartbeat(source: Mapping[str, Any]) -> tuple[str, datetime] | None:
    """(replica id, expiry) of a heartbeat document; None if malformed."""
    replica = (source.get("replica") or {}).get("id")
    expires = parse_iso((source.get("lease") or {}).get("expires"))
    if not isinstance(replica, str) or expires is None:
        return None
    return replica, expires
