"""What the execution log says across executions: attempts of a window, failed windows to
backfill, the last execution that really ran, and executions that never finished.

Every request goes through `detector.es.client.Elastic`. All of it lives in the execution-log index,
which every replica and every restart shares, so counts survive both.

An execution first writes a document of status `running` under its execution id (the id its
alerts carry in `kibana.alert.rule.execution.uuid`) and replaces it when it ends. A process
killed in between leaves the `running` document: the next execution of the rule finds it and
*reconciles* it: `failed`, with the number of alerts that id wrote counted in the alerts index
(the truth), and `metrics.alerts_counted: alerts index` saying where the count comes from.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from detector.datemath import parse_interval
from detector.errors import ConflictError, DetectorError
from detector.es.client import Elastic
from detector.execution_log import documents
from detector.execution_log.health import RuleRuns
from detector.execution_log.store import ExecutionStore
from detector.results import FAILED, PARTIAL_FAILURE, SUCCEEDED, ExecutionRef, ExecutionResult
from detector.rules import Rule
from detector.schedule.failed_windows import (
    FAILED_WINDOW,
    FailedWindow,
    failed_window_doc,
    parse_failed_window,
)
from detector.times import iso, parse_iso

log = logging.getLogger(__name__)

EXECUTION_UUID = "kibana.alert.rule.execution.uuid"
# Failed windows or interrupted executions read per request: far more than ever pile up.
PAGE = 1000


class RunRecords:
    """The cross-execution records of the execution log `index` (alerts in `alerts_index`)."""

    def __init__(self, elastic: Elastic, index: str, alerts_index: str | None) -> None:
        self.elastic, self.index, self.alerts_index = elastic, index, alerts_index

    def started(
        self,
        rule: Rule,
        now: datetime,
        execution: ExecutionRef,
        at: datetime,
        replica: documents.Replica,
    ) -> None:
        """Write the `running` document of the `execution` of `rule` at `now`; the execution
        replaces it when it ends. Logged, never raised: the execution goes on."""
        pending = ExecutionResult(rule.rule_id, rule.name, now, documents.RUNNING)
        doc = documents.running_doc(
            pending,
            execution=execution,
            started=at,
            interval=rule.interval,
            replica=replica,
        )
        try:
            self.elastic.index_document(self.index, execution.id, doc)
        except DetectorError as exc:
            log.warning(
                "rule %s: could not record the start of %s: %s", rule.rule_id, execution.id, exc
            )

    # --- attempts and failed windows -------------------------------------------------------

    def failed_attempts(self, rule_id: str, now: datetime) -> int:
        """How many scheduled executions of the rule at `now` failed so far (raises)."""
        self.elastic.refresh(self.index)  # the previous attempt may be a moment old
        query = _filters(
            {"term": {"kind": documents.EXECUTION}},
            {"term": {"rule.id": rule_id}},
            {"term": {"execution.type": documents.SCHEDULED}},
            {"term": {"execution.status": FAILED}},
            {"term": {"execution.scheduled": iso(now)}},
        )
        return self.elastic.count([self.index], query)

    def record_failed_window(self, window: FailedWindow) -> bool:
        """Write the failed window's document; a failure is logged, never raised."""
        doc = failed_window_doc(window, datetime.now(UTC))
        try:
            self.elastic.index_document(self.index, window.doc_id, doc)
        except DetectorError as exc:
            log.error("could not record the failed window %s: %s", window.doc_id, exc)
            return False
        return True

    def open_failed_windows(self, rule_ids: Sequence[str]) -> list[FailedWindow]:
        """The failed windows of these rules not backfilled yet, oldest first (raises)."""
        body = {
            "size": PAGE,
            "query": _filters(
                {"term": {"kind": FAILED_WINDOW}},
                {"terms": {"rule.id": list(rule_ids)}},
                {"bool": {"must_not": {"exists": {"field": "failed_window.backfilled"}}}},
            ),
            "sort": [{"execution.scheduled": {"order": "asc", "unmapped_type": "date"}}],
        }
        hits = self.elastic.search([self.index], body)["hits"]["hits"]
        return [parse_failed_window(hit["_source"]) for hit in hits]

    def mark_backfilled(self, window: FailedWindow, execution_id: str | None) -> bool:
        """Say the window is covered now, by which execution; logged, never raised."""
        doc = failed_window_doc(window, datetime.now(UTC))
        doc["failed_window"].update(backfilled=iso(datetime.now(UTC)), backfilled_by=execution_id)
        try:
            self.elastic.index_document(self.index, window.doc_id, doc)
        except DetectorError as exc:
            log.error("could not mark the failed window %s backfilled: %s", window.doc_id, exc)
            return False
        log.info("rule %s: the failed window at %s is backfilled", window.rule_id, iso(window.now))
        return True

    # --- clock skew ------------------------------------------------------------------------

    def last_real_run(self, rule_id: str, clock: datetime) -> datetime | None:
        """The `now` of the newest successful scheduled execution that is not in the future of
        `clock` (neither scheduled nor ended after it): the last one that really ran (raises)."""
        body = {
            "size": 1,
            "query": _filters(
                {"term": {"kind": documents.EXECUTION}},
                {"term": {"rule.id": rule_id}},
                {"term": {"execution.type": documents.SCHEDULED}},
                {"terms": {"execution.status": [SUCCEEDED, PARTIAL_FAILURE]}},
                {"range": {"execution.scheduled": {"lte": iso(clock)}}},
                {"range": {"execution.ended": {"lte": iso(clock)}}},
            ),
            "sort": [{"execution.scheduled": {"order": "desc"}}],
        }
        hits = self.elastic.search([self.index], body)["hits"]["hits"]
        return parse_iso(hits[0]["_source"]["execution"]["scheduled"]) if hits else None

    # --- interrupted executions ------------------------------------------------------------

    def reconcile(self, rule_id: str) -> int:
        """Turn the rule's `running` documents left by killed processes into `failed` ones with
        the alerts counted in the alerts index; how many. Logged, never raised."""
        try:
            stale = self._running(rule_id)
            counts = self._alerts_by_execution([hit["_id"] for hit in stale])
        except DetectorError as exc:
            log.warning("rule %s: could not look for interrupted executions: %s", rule_id, exc)
            return 0
        done = 0
        for hit in stale:
            done += self._reconcile_one(hit, counts.get(hit["_id"], 0))
        return done

    def alerts_written(self, execution_id: str) -> int | None:
        """How many alerts carry this execution id, counted in the alerts index (None when it
        cannot be read; logged)."""
        try:
            return self._alerts_by_execution([execution_id]).get(execution_id, 0)
        except DetectorError as exc:
            log.warning("could not count the alerts of the execution %s: %s", execution_id, exc)
            return None

    def _running(self, rule_id: str) -> list[dict[str, Any]]:
        self.elastic.refresh(self.index)
        body = {
            "size": PAGE,
            "seq_no_primary_term": True,
            "query": _filters(
                {"term": {"kind": documents.EXECUTION}},
                {"term": {"rule.id": rule_id}},
                {"term": {"execution.status": documents.RUNNING}},
            ),
        }
        hits: list[dict[str, Any]] = self.elastic.search([self.index], body)["hits"]["hits"]
        return hits

    def _alerts_by_execution(self, ids: Sequence[str]) -> dict[str, int]:
        if not ids or self.alerts_index is None:
            return {}
        self.elastic.refresh(self.alerts_index)
        body = {
            "size": 0,
            "query": {"terms": {EXECUTION_UUID: list(ids)}},
            "aggs": {"ids": {"terms": {"field": EXECUTION_UUID, "size": len(ids)}}},
        }
        found = self.elastic.search([self.alerts_index], body)
        buckets = found.get("aggregations", {}).get("ids", {}).get("buckets", [])
        return {str(bucket["key"]): int(bucket["doc_count"]) for bucket in buckets}

    def _reconcile_one(self, hit: Mapping[str, Any], alerts: int) -> int:
        doc = documents.interrupted_doc(hit["_source"], alerts, datetime.now(UTC))
        version = (int(hit["_seq_no"]), int(hit["_primary_term"]))
        try:  # conditional: an execution that was only slow and ends meanwhile keeps its own
            self.elastic.put_versioned(self.index, hit["_id"], doc, if_version=version)
        except ConflictError:
            return 0
        except DetectorError as exc:
            log.warning("could not reconcile the execution %s: %s", hit["_id"], exc)
            return 0
        log.error(
            "rule %s: the execution %s at %s was interrupted before it finished (process "
            "killed?); it wrote %d alert(s), counted in the alerts index",
            doc["rule"]["id"],
            hit["_id"],
            doc["execution"]["scheduled"],
            alerts,
        )
        return 1


def health_runs(log: ExecutionStore, rule: Rule, recent: int) -> RuleRuns:
    """What `detector health` judges a rule by: its newest executions, its checkpoint and
    interval, and its failed windows not backfilled yet (raises)."""
    records = RunRecords(log.elastic, log.index, None)
    return dataclasses.replace(
        log.last_runs(rule, recent),
        checkpoint=log.checkpoint(rule.rule_id),
        interval=parse_interval(rule.interval),
        failed_windows=tuple(records.open_failed_windows([rule.rule_id])),
    )


def _filters(*clauses: Mapping[str, Any]) -> dict[str, Any]:
    return {"bool": {"filter": list(clauses)}}
