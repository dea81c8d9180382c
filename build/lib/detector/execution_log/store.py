"""The execution-log index: one document per execution, and each rule's checkpoint.

Every request goes through `detector.es.client.Elastic`; nothing here imports the client. Like the
alerts index, it is a plain visible index (no data stream, ILM or pipeline) created from a
composable template with explicit, strict mappings (detector/mappings/executions-template.json).
The checkpoint of a rule (the `now` of its last successful scheduled execution) is a small
document of kind `checkpoint` in the same index, under the id `checkpoint:<rule id>`.

`record` never raises: a log that cannot be written is logged loudly, and the execution it
describes stands.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from detector.errors import DetectorError
from detector.es.own_index import OwnIndex
from detector.execution_log import documents
from detector.execution_log.health import RuleRuns
from detector.logs import structured
from detector.results import PARTIAL_FAILURE, STATUSES, SUCCEEDED
from detector.rules import Rule
from detector.schedule import leases
from detector.times import parse_iso

log = logging.getLogger(__name__)

SUCCESSFUL = (SUCCEEDED, PARTIAL_FAILURE)


class ExecutionStore(OwnIndex):
    """Writes and reads the execution log of every rule in one index."""

    TEMPLATE_RESOURCE = "mappings/executions-template.json"

    def write(self, doc_id: str, doc: Mapping[str, Any]) -> None:
        """Index one document under `doc_id` (raises on failure)."""
        self.elastic.index_document(self.index, doc_id, doc)

    def record(self, doc_id: str, doc: Mapping[str, Any]) -> bool:
        """Write an execution document; a failure is logged as an error, never raised."""
        try:
            self.write(doc_id, doc)
        except DetectorError as exc:
            log.error(
                "could not write the execution log to %s: %s",
                self.index,
                exc,
                extra=structured(execution_log=dict(doc)),
            )
            return False
        return True

    def checkpoint(self, rule_id: str) -> datetime | None:
        """The `now` of the rule's last successful scheduled execution, if any (raises): the
        later of the checkpoint `detector once` moves and the one in the rule's lease, which
        `detector run` replicas move."""
        ids = [documents.checkpoint_id(rule_id), leases.lease_id(rule_id)]
        found = self.elastic.mget_versioned(self.index, ids)
        times = [parse_iso(doc.source.get("checkpoint")) for doc in found.values()]
        known = [moment for moment in times if moment is not None]
        return max(known) if known else None

    def save_checkpoint(self, rule: Rule, now: datetime) -> bool:
        """Move the rule's checkpoint to `now`; a failure is logged, never raised."""
        doc = documents.checkpoint_doc(rule.rule_id, rule.name, now, datetime.now(UTC))
        try:
            self.write(documents.checkpoint_id(rule.rule_id), doc)
        except DetectorError as exc:
            log.error(
                "could not save the checkpoint of rule %s: %s (the next execution repeats "
                "the catch-up from the previous one)",
                rule.rule_id,
                exc,
            )
            return False
        return True

    def last_runs(self, rule: Rule, recent: int = 1) -> RuleRuns:
        """The rule's newest scheduled execution (and its `recent` newest, in `recent`) and its
        newest successful one; executions still `running` are left out."""
        bodies = [_newest(rule.rule_id, STATUSES, recent), _newest(rule.rule_id, SUCCESSFUL)]
        newest, success = self.elastic.msearch([self.index], bodies)
        hits = [dict(hit["_source"]) for hit in newest.get("hits", {}).get("hits", [])]
        last = hits[0] if hits else None
        return RuleRuns(rule.rule_id, rule.name, last, _first(success), recent=tuple(hits))

    def refresh(self) -> None:
        """Make the documents written so far searchable."""
        self.elastic.refresh(self.index)


def _newest(rule_id: str, statuses: tuple[str, ...] | None, size: int = 1) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {"term": {"kind": documents.EXECUTION}},
        {"term": {"rule.id": rule_id}},
        {"term": {"execution.type": documents.SCHEDULED}},
    ]
    if statuses is not None:
        filters.append({"terms": {"execution.status": list(statuses)}})
    return {
        "size": size,
        "query": {"bool": {"filter": filters}},
        "sort": [{"execution.ended": {"order": "desc", "unmapped_type": "date"}}],
    }


def _first(response: Mapping[str, Any]) -> dict[str, Any] | None:
    hits = response.get("hits", {}).get("hits", [])
    return dict(hits[0]["_source"]) if hits else None
