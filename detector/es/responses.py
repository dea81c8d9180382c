"""What Elasticsearch's answers mean: errors translated into `detector.errors`, shard failures
and timeouts refused (a partial answer is a failure, never a result), and the small values the
client hands back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import elastic_transport
import elasticsearch
from elasticsearch import Elasticsearch

from detector.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    ElasticsearchError,
    RequestError,
    TlsError,
    UnavailableError,
)

# Statuses that mean "try again later" (elastic-transport's default `retry_on_status`).
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class ClusterInfo:
    """What `GET /` says about the cluster."""

    name: str
    version: str


@dataclass
class RequestStats:
    """Requests sent and time spent waiting for them, for execution reports."""

    requests: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Versioned:
    """A document's `_source` and the version a conditional write is checked on."""

    source: dict[str, Any]
    seq_no: int
    primary_term: int


@dataclass
class BulkResult:
    """Outcome of a bulk create: ids written now, ids that already existed, ids rejected."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def reason_of(body: Any) -> str:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            root = error.get("root_cause") or [error]
            first = root[0] if isinstance(root, list) and root else error
            return f"{first.get('type', 'error')}: {first.get('reason', '')}".strip()
        if isinstance(error, str):
            return error
    return str(body)[:500]


def translate(exc: Exception) -> ElasticsearchError:
    """Turn a client exception into the detector's own error."""
    if isinstance(exc, elastic_transport.TlsError):
        return TlsError(f"TLS failure talking to Elasticsearch: {exc.message}{_tls_hint(exc)}")
    if isinstance(exc, elastic_transport.ConnectionTimeout):
        return UnavailableError(f"Elasticsearch did not answer in time: {exc.message}")
    if isinstance(exc, elastic_transport.ConnectionError):
        return UnavailableError(f"cannot reach Elasticsearch: {exc.message}")
    if isinstance(exc, elasticsearch.UnsupportedProductError):
        return RequestError(f"the server is not Elasticsearch: {exc.message}")
    if isinstance(exc, elasticsearch.ApiError):
        return _translate_api_error(exc)
    return RequestError(f"Elasticsearch request failed: {exc}")


def _tls_hint(exc: elastic_transport.TlsError) -> str:
    # OpenSSL reads a plain-HTTP answer to its ClientHello as a record of an unknown version.
    if "wrong version number" in str(exc.message).lower():
        return " (the node answers plain HTTP: use an http:// URL, or enable TLS on its HTTP layer)"
    return ""


def _translate_api_error(exc: elasticsearch.ApiError) -> ElasticsearchError:
    status, reason = exc.meta.status, reason_of(exc.body)
    if status in TRANSIENT_STATUSES:
        return UnavailableError(f"Elasticsearch is busy or unavailable ({status}): {reason}")
    if status == 401:
        return AuthenticationError(f"authentication failed (401): {reason}")
    if status == 403:
        return AuthorizationError(f"not authorized (403): {reason}")
    if status == 409:
        return ConflictError(f"version conflict (409): {reason}", status, reason)
    return RequestError(f"Elasticsearch rejected the request ({status}): {reason}", status, reason)


def check_msearch_item(response: Mapping[str, Any]) -> None:
    if "error" in response:
        status, reason = response.get("status"), reason_of(response)
        if status in TRANSIENT_STATUSES:
            raise UnavailableError(f"Elasticsearch is busy or unavailable ({status}): {reason}")
        raise RequestError(
            f"Elasticsearch rejected a search of a multi-search ({status}): {reason}",
            status,
            reason,
        )
    check_shards(response)


def cluster_info(es: Elasticsearch) -> ClusterInfo:
    """`GET /`, or the local node's info where `GET /` is missing (405).

    The integ-test-zip the tests run on lacks the `rest-root` module that serves `GET /`.
    """
    try:
        body = es.info().body
        return ClusterInfo(name=body["cluster_name"], version=body["version"]["number"])
    except elasticsearch.ApiError as exc:
        if exc.meta.status != 405:
            raise
    nodes = es.nodes.info(node_id="_local", metric="_none").body
    node = next(iter(nodes["nodes"].values()))
    return ClusterInfo(name=nodes["cluster_name"], version=node["version"])


def check_shards(response: Mapping[str, Any]) -> None:
    shards = response.get("_shards", {})
    if shards.get("failed"):
        failures = shards.get("failures") or [{}]
        reason = failures[0].get("reason", {})
        raise RequestError(
            f"{shards['failed']} of {shards.get('total')} shards failed: "
            f"{reason.get('type', '')}: {reason.get('reason', '')}",
            reason=str(reason.get("type", "")),
        )
    if response.get("timed_out"):
        raise UnavailableError("the search timed out on some shards; its result would be partial")
