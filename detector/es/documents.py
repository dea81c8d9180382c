"""The document requests of `detector.es.client.Elastic`: single documents, conditional
writes (`if_seq_no`/`if_primary_term`, how replicas coordinate), deletes by id and bulk creates.

A mixin: `Elastic` gives it `call` (retries and error translation) and `settings`; nothing here
builds a client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from elasticsearch import Elasticsearch

from detector.errors import BulkError, RequestError
from detector.es.responses import BulkResult, Versioned
from detector.es.retrying import item_backoff
from detector.settings import Settings

T = TypeVar("T")


class DocumentRequests:
    """Requests about documents by id; `Elastic` provides `call` and `settings`."""

    settings: Settings

    def call(self, request: Callable[[Elasticsearch], T]) -> T:
        raise NotImplementedError  # `Elastic.call`

    def _body(self, request: Callable[[Elasticsearch], Any]) -> dict[str, Any]:
        raise NotImplementedError  # `Elastic._body`

    def delete_documents(self, index: str, ids: Sequence[str]) -> int:
        """Delete these documents of `index` in one bulk request (refreshing it); how many were
        there. (`_delete_by_query` lives in the reindex module, which not every node has.)"""
        if not ids:
            return 0
        operations = [{"delete": {"_index": index, "_id": doc_id}} for doc_id in ids]
        body = self.call(lambda es: es.bulk(operations=operations, refresh="wait_for")).body
        failed = [
            item["delete"] for item in body["items"] if item["delete"]["status"] not in (200, 404)
        ]
        if failed:
            raise BulkError(f"{len(failed)} of {len(ids)} deletes failed in {index}", failed)
        return sum(item["delete"]["status"] == 200 for item in body["items"])

    def index_document(self, index: str, doc_id: str, doc: Mapping[str, Any]) -> None:
        """Create or replace the document `doc_id` of `index`."""
        self.call(lambda es: es.index(index=index, id=doc_id, document=dict(doc)))

    def get_document(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """The `_source` of the document `doc_id`; None when it (or its index) does not exist."""
        try:
            found = self._body(lambda es: es.get(index=index, id=doc_id))
        except RequestError as error:
            if error.status == 404:
                return None
            raise
        return dict(found["_source"])

    def get_versioned(self, index: str, doc_id: str) -> Versioned | None:
        """The document `doc_id` with its `_seq_no`/`_primary_term`; None when missing."""
        found = self.mget_versioned(index, [doc_id])
        return found.get(doc_id)

    def mget_versioned(self, index: str, doc_ids: Sequence[str]) -> dict[str, Versioned]:
        """The documents among `doc_ids` that exist (real-time `_mget`), with their versions."""
        if not doc_ids:
            return {}
        try:
            body = self._body(lambda es: es.mget(index=index, ids=list(doc_ids)))
        except RequestError as error:
            if error.status == 404:  # no index yet
                return {}
            raise
        return {
            doc["_id"]: Versioned(dict(doc["_source"]), doc["_seq_no"], doc["_primary_term"])
            for doc in body["docs"]
            if doc.get("found")
        }

    def put_versioned(
        self,
        index: str,
        doc_id: str,
        doc: Mapping[str, Any],
        *,
        if_version: tuple[int, int] | None = None,
        create: bool = False,
    ) -> tuple[int, int]:
        """Index `doc` only if the stored one still has `if_version` (`_seq_no`,
        `_primary_term`), or, with `create`, only if none exists; returns the new version.
        Raises `ConflictError` when the condition does not hold (409)."""
        options: dict[str, Any] = {}
        if if_version is not None:
            options.update(if_seq_no=if_version[0], if_primary_term=if_version[1])
        if create:
            options["op_type"] = "create"
        body = self._body(
            lambda es: es.index(index=index, id=doc_id, document=dict(doc), **options)
        )
        return int(body["_seq_no"]), int(body["_primary_term"])

    def update_versioned(
        self, index: str, doc_id: str, partial: Mapping[str, Any], if_version: tuple[int, int]
    ) -> tuple[int, int]:
        """Merge `partial` into the document only if it still has `if_version` (`_seq_no`,
        `_primary_term`); returns the new version. Raises `ConflictError` when it changed."""
        body = self._body(
            lambda es: es.update(
                index=index,
                id=doc_id,
                doc=dict(partial),
                if_seq_no=if_version[0],
                if_primary_term=if_version[1],
            )
        )
        return int(body["_seq_no"]), int(body["_primary_term"])

    def bulk_update_versioned(
        self, index: str, updates: Mapping[str, tuple[Mapping[str, Any], tuple[int, int]]]
    ) -> dict[str, tuple[int, int]]:
        """`update_versioned` of many documents in one `_bulk` (id -> partial document and
        the version it must still have); the new versions of the updates that were applied.
        An id left out conflicted (409) or was refused: the caller re-reads it."""
        if not updates:
            return {}
        operations: list[Mapping[str, Any]] = []
        for doc_id, (partial, (seq_no, term)) in updates.items():
            header = {"_index": index, "_id": doc_id, "if_seq_no": seq_no, "if_primary_term": term}
            operations += [{"update": header}, {"doc": dict(partial)}]
        body = self._body(lambda es: es.bulk(operations=operations))
        applied = (item["update"] for item in body.get("items", []))
        return {
            str(item["_id"]): (int(item["_seq_no"]), int(item["_primary_term"]))
            for item in applied
            if item.get("status") == 200
        }

    def bulk_create(
        self, index: str, docs: Mapping[str, Mapping[str, Any]], refresh: bool = True
    ) -> BulkResult:
        """Write documents with op_type `create` under their ids; an existing id is not an error.

        Items rejected with 429 are sent again (bounded by the retry settings); any other
        rejection raises `BulkError`, after the rest were written.
        """
        result, pending = BulkResult(), dict(docs)
        for attempt in range(1, self.settings.es_retry_attempts + 1):
            if not pending:
                break
            if attempt > 1:  # items refused as busy back off as whole requests do
                time.sleep(item_backoff(attempt - 1))
            retry = self._bulk_once(index, pending, refresh, result)
            pending = {doc_id: pending[doc_id] for doc_id in retry}
        result.rejected.extend({"_id": doc_id, "status": 429} for doc_id in pending)
        if result.rejected:
            raise BulkError(
                f"{len(result.rejected)} of {len(docs)} documents were rejected by {index}: "
                f"{result.rejected[0]}",
                result.rejected,
                created=result.created,
                existing=result.existing,
            )
        return result

    def _bulk_once(
        self,
        index: str,
        docs: Mapping[str, Mapping[str, Any]],
        refresh: bool,
        result: BulkResult,
    ) -> list[str]:
        operations: list[Mapping[str, Any]] = []
        for doc_id, doc in docs.items():
            operations.append({"create": {"_index": index, "_id": doc_id}})
            operations.append(doc)
        body = self.call(
            lambda es: es.bulk(operations=operations, refresh="wait_for" if refresh else False)
        ).body
        retry: list[str] = []
        answered = {item.get("create", {}).get("_id") for item in body.get("items", [])}
        # Every id sent must get an answer; one left out would be lost without a word.
        result.rejected.extend(
            {"_id": doc_id, "status": None, "error": "no answer for this item in the response"}
            for doc_id in docs
            if doc_id not in answered
        )
        for item in body.get("items", []):
            outcome = item["create"]
            status, doc_id = outcome["status"], outcome["_id"]
            if status == 201:
                result.created.append(doc_id)
            elif status == 409:
                result.existing.append(doc_id)
            elif status == 429:
                retry.append(doc_id)
            else:
                result.rejected.append(
                    {"_id": doc_id, "status": status, "error": outcome.get("error")}
                )
        return retry
