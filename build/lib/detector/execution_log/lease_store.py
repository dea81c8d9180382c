"""The lease and heartbeat documents in the execution-log index (reads and conditional writes).

Every write of a lease is conditional, the way Kibana's Task Manager claims tasks: `op_type:
create` for a rule's first lease, `if_seq_no`/`if_primary_term` of the version last read or
written afterwards. A refused write raises `ConflictError`: another replica changed the lease.
Leases are read with a real-time `_mget`; heartbeats with a search (refreshed once a second,
which is fine for documents renewed every few seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from detector.es.client import Elastic
from detector.execution_log import documents
from detector.rules import Rule
from detector.schedule import leases
from detector.schedule.leases import Lease, Version


class LeaseStore:
    """Leases of the rules and heartbeats of the replicas, in the index `index`."""

    def __init__(self, elastic: Elastic, index: str) -> None:
        self.elastic = elastic
        self.index = index

    def read(self, rule_ids: Sequence[str]) -> dict[str, Lease]:
        """The current lease of each rule (without a `version` when it has none yet)."""
        found = self.elastic.mget_versioned(self.index, [leases.lease_id(rid) for rid in rule_ids])
        result: dict[str, Lease] = {}
        for rule_id in rule_ids:
            doc = found.get(leases.lease_id(rule_id))
            if doc is None:
                result[rule_id] = Lease(rule_id)
            else:
                version = Version(doc.seq_no, doc.primary_term)
                result[rule_id] = leases.parse_lease(rule_id, doc.source, version)
        return result

    def write(
        self,
        rule: Rule,
        holder: str | None,
        *,
        now: datetime,
        expires: datetime,
        checkpoint: datetime | None,
        version: Version | None,
    ) -> Version:
        """Write the rule's lease if it is still at `version` (None: only if there is none);
        raises `ConflictError` otherwise. Returns the new version."""
        doc = leases.lease_doc(
            rule.rule_id, rule.name, holder, now=now, expires=expires, checkpoint=checkpoint
        )
        written = self.elastic.put_versioned(
            self.index,
            leases.lease_id(rule.rule_id),
            doc,
            if_version=None if version is None else (version.seq_no, version.primary_term),
            create=version is None,
        )
        return Version(*written)

    def legacy_checkpoint(self, rule_id: str) -> datetime | None:
        """The checkpoint `detector once` (or a version without leases) left, if any."""
        found = self.elastic.get_document(self.index, documents.checkpoint_id(rule_id))
        return None if found is None else documents.parse_checkpoint(found)

    def heartbeat(self, replica: str, now: datetime, expires: datetime, held: int) -> None:
        """Say this replica is live until `expires` (its own document, so unconditional)."""
        doc = leases.replica_doc(replica, now, expires, held)
        self.elastic.index_document(self.index, leases.replica_doc_id(replica), doc)

    def heartbeats(self, since: datetime) -> dict[str, datetime]:
        """Replica id -> expiry of the heartbeats that expire after `since`."""
        body = {
            "size": 1000,
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"kind": leases.REPLICA}},
                        {"range": {"lease.expires": {"gt": since.isoformat()}}},
                    ]
                }
            },
        }
        hits = self.elastic.search([self.index], body)["hits"]["hits"]
        parsed = (leases.parse_heartbeat(hit["_source"]) for hit in hits)
        return dict(item for item in parsed if item is not None)
