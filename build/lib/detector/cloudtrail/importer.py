"""`detector import cloudtrail`: raw CloudTrail files into `logs-aws.cloudtrail-<namespace>`.

Records are read by `detector.cloudtrail.files`, mapped by `detector.cloudtrail.ecs` and written
in batches with `op_type: create` under `_id = eventID`, so importing the same files again adds
nothing and a document already there is never overwritten.

The target index:
- missing: created from a template of the detector's own for exactly that name (a plain index
  with the integration's mapping, `_meta.managed_by` marking it), above Fleet's and the built-in
  `logs` templates, which would make it a data stream;
- an index the detector did not create: documents are only added (never overwritten, nothing
  deleted, the mapping left as it is);
- a data stream or an alias (a real Fleet cluster's data): refused, because the documents would
  go through Fleet's pipelines and mix with live data; pick another `--namespace`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detector.cloudtrail.ecs import index_name, parse_iso8601, to_ecs
from detector.cloudtrail.files import (
    DEFAULT_NAMESPACE,
    BadRecord,
    Position,
    RawRecord,
    SkippedFile,
    log_files,
    read_records,
)
from detector.deployment.scenario import ECS_MAPPINGS
from detector.errors import BulkError, ImportRefusedError, RecordError, RequestError
from detector.es.client import Elastic
from detector.es.templates import MANAGED_BY, template_priority

BATCH = 1000
# Bulk requests also stop growing at about this size (records can hold 100 kB policies; a
# document is roughly three times its raw record: event.original, the strings, the flattened).
BATCH_BYTES = 16 * 1024 * 1024
PURPOSE = "detector import cloudtrail"

# progress(files done, files in all, records read so far)
Progress = Callable[[int, int, int], None]


@dataclass
class ImportReport:
    """What an import did; `created + existing + len(bad) == records`."""

    index: str
    index_created: bool = False
    index_ours: bool = True
    files: int = 0
    records: int = 0
    created: int = 0
    existing: int = 0
    bad: list[BadRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (bad records: the first 100)."""
        return {
            "index": self.index,
            "index_created": self.index_created,
            "files": self.files,
            "records": self.records,
            "created": self.created,
            "existing": self.existing,
            "bad": len(self.bad),
            "bad_records": [str(bad) for bad in self.bad[:100]],
            "skipped_files": [str(skip.file) for skip in self.skipped],
            "first_event": self.first.isoformat() if self.first else None,
            "last_event": self.last.isoformat() if self.last else None,
            "seconds": round(self.seconds, 3),
        }


def index_template(index: str) -> dict[str, Any]:
    """The template giving exactly `index` the integration's mapping, as a plain index."""
    meta = {"managed_by": MANAGED_BY, "purpose": PURPOSE}
    return {
        "index_patterns": [index],
        "priority": template_priority(index),
        "template": {
            "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "mappings": {"_meta": meta, **ECS_MAPPINGS},
        },
        "_meta": meta,
    }


def template_name(index: str) -> str:
    """`newterms-detector-import-<index>`."""
    return f"{MANAGED_BY}-import-{index}"


def prepare_index(elastic: Elastic, index: str) -> tuple[bool, bool]:
    """Make sure `index` can take the documents: (created now, created by the detector).

    Raises `ImportRefusedError` for a data stream or an alias.
    """
    try:
        resolved = elastic.resolve_index(index, expand_wildcards="all")
    except RequestError as error:
        if error.status != 404:
            raise
        resolved = {}
    if resolved.get("data_streams"):
        raise ImportRefusedError(
            f"{index} is a data stream (Fleet's data, most likely): the import does not write "
            "into live data; choose another --namespace"
        )
    if resolved.get("aliases"):
        raise ImportRefusedError(f"{index} is an alias; choose another --namespace")
    if resolved.get("indices"):
        return False, _is_ours(elastic, index)
    elastic.put_index_template(template_name(index), index_template(index))
    return elastic.create_index(index), True


def _is_ours(elastic: Elastic, index: str) -> bool:
    mapping = elastic.get_mapping(index)
    first: dict[str, Any] = next(iter(mapping.values()), {})
    meta = first.get("mappings", {}).get("_meta", {})
    return bool(meta.get("managed_by") == MANAGED_BY and meta.get("purpose") == PURPOSE)


@dataclass
class _Batch:
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    where: dict[str, Position] = field(default_factory=dict)
    size: int = 0

    def full(self, batch_size: int) -> bool:
        """Enough documents, or enough bytes, for one bulk request."""
        return len(self.docs) >= batch_size or self.size >= BATCH_BYTES


def import_files(
    elastic: Elastic,
    paths: Sequence[Path],
    namespace: str = DEFAULT_NAMESPACE,
    progress: Progress | None = None,
    batch_size: int = BATCH,
) -> ImportReport:
    """Import every record of `paths` into `logs-aws.cloudtrail-<namespace>`."""
    started = time.monotonic()
    report = ImportReport(index=index_name(namespace))
    report.index_created, report.index_ours = prepare_index(elastic, report.index)
    files = log_files(paths)
    report.files = len(files)
    batch = _Batch()
    created_at = datetime.now(UTC)  # the "read time" a shipper would put in event.created
    for done, path in enumerate(files, 1):
        for item in read_records(path):
            if isinstance(item, SkippedFile):
                report.skipped.append(item)
                continue
            report.records += 1
            if isinstance(item, BadRecord):
                report.bad.append(item)
                continue
            _add(batch, item, namespace, created_at, report)
            if batch.full(batch_size):
                _flush(elastic, report, batch)
        if progress is not None:
            progress(done, len(files), report.records)
    _flush(elastic, report, batch)
    elastic.refresh(report.index)
    report.seconds = time.monotonic() - started
    return report


def _add(
    batch: _Batch, item: RawRecord, namespace: str, created_at: datetime, report: ImportReport
) -> None:
    try:
        doc = to_ecs(item.record, namespace, original=item.text, created=created_at)
    except RecordError as error:
        report.bad.append(BadRecord(item.where, str(error)))
        return
    event_id = doc["event"]["id"]
    if event_id in batch.docs:  # the same event twice in the files: it is there already
        report.existing += 1
        return
    batch.docs[event_id] = doc
    batch.where[event_id] = item.where
    batch.size += 3 * len(doc["event"]["original"])
    moment = parse_iso8601(doc["@timestamp"])
    if moment is not None:
        report.first = moment if report.first is None else min(report.first, moment)
        report.last = moment if report.last is None else max(report.last, moment)


def _flush(elastic: Elastic, report: ImportReport, batch: _Batch) -> None:
    if not batch.docs:
        return
    try:
        result = elastic.bulk_create(report.index, batch.docs, refresh=False)
        report.created += len(result.created)
        report.existing += len(result.existing)
    except BulkError as error:
        # Documents Elasticsearch refused (a mapping conflict...) are bad records; the rest
        # of the batch was written.
        report.created += len(error.created)
        report.existing += len(error.existing)
        for rejected in error.items:
            where = batch.where[str(rejected.get("_id"))]
            report.bad.append(BadRecord(where, f"rejected by Elasticsearch: {_why(rejected)}"))
    batch.docs.clear()
    batch.where.clear()
    batch.size = 0


def _why(rejected: dict[str, Any]) -> str:
    error = rejected.get("error")
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"
    return f"status {rejected.get('status')}"
