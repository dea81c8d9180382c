"""What Elasticsearch's answers mean: errors translated into `detector.errors`, shard failures
and timeouts refused (a partial answer is a failure, never a result), and the small values the
client hands back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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
    PartialResultError,
    RequestError,
    TlsError,
    UnavailableError,
)
from detector.query.clusters import cluster_of

SUCCESSFUL = "successful"
# Shard failures that mean the shard's copy is out of reach (its node lost, not yet assigned),
# not that the query is wrong: the answer lacks that shard's documents.
SHARD_LOST = frozenset(
    {
        "no_shard_available_action_exception",
        "node_not_connected_exception",
        "node_disconnected_exception",
        "connect_transport_exception",
        "node_closed_exception",
        "shard_not_found_exception",
        "illegal_index_shard_state_exception",
        "unavailable_shards_exception",
    }
)
# Errors of a whole request that mean a remote cluster is out of reach.
REMOTE_LOST = frozenset(
    {
        "connect_transport_exception",
        "node_disconnected_exception",
        "node_not_connected_exception",
        "no_such_remote_cluster_exception",
    }
)
_ALIAS = re.compile(r"(?:Unable to connect to|remote cluster:?) \[([^\]\[]+)\]")
_ADDRESS = re.compile(r"\[[^\]]*\]\[([0-9a-fA-F.:]+:\d+)\]")
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
    lost = remote_lost(exc.body)
    if lost is not None:
        return lost
    if status in TRANSIENT_STATUSES:
        return UnavailableError(f"Elasticsearch is busy or unavailable ({status}): {reason}")
    if status == 401:
        return AuthenticationError(f"authentication failed (401): {reason}")
    if status == 403:
        return AuthorizationError(f"not authorized (403): {reason}")
    if status == 409:
        return ConflictError(f"version conflict (409): {reason}", status, reason)
    return RequestError(f"Elasticsearch rejected the request ({status}): {reason}", status, reason)


def remote_lost(body: Any) -> PartialResultError | None:
    """The answer of a request that a remote cluster failed as a whole (`_field_caps` even
    with `skip_unavailable`, a search without it: 502 `connect_transport_exception`), naming
    the cluster: its alias where Elasticsearch gives it (`Unable to connect to [east]`, `no
    such remote cluster: [east]`), else its address (`Elastic` looks the alias up)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping) or error.get("type") not in REMOTE_LOST:
        return None
    text = str(error.get("reason", ""))
    named = _ALIAS.search(text) or _ADDRESS.search(text)
    cluster = named.group(1) if named else "a remote cluster"
    return PartialResultError(
        f"remote cluster {cluster} is unavailable: {reason_of(body)}", (cluster,)
    )


def check_msearch_item(response: Mapping[str, Any], expected: Iterable[str] = ()) -> None:
    if "error" in response:
        lost = remote_lost(response)
        if lost is not None:
            raise lost
        status, reason = response.get("status"), reason_of(response)
        if status in TRANSIENT_STATUSES:
            raise UnavailableError(f"Elasticsearch is busy or unavailable ({status}): {reason}")
        raise RequestError(
            f"Elasticsearch rejected a search of a multi-search ({status}): {reason}",
            status,
            reason,
        )
    check_shards(response, expected)


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


def check_shards(response: Mapping[str, Any], expected: Iterable[str] = ()) -> None:
    """Refuse a partial answer: a cluster skipped or not `successful`, failed shards, a timeout,
    or a cluster of `expected` (aliases; `(local)`) that searched no shard although the rule's
    indices were found there (`_field_caps`): its shards are gone, not empty."""
    check_clusters(response)
    shards = response.get("_shards", {})
    if shards.get("failed"):
        _shard_failure(shards)
    if response.get("timed_out"):
        raise UnavailableError("the search timed out on some shards; its result would be partial")
    missing = [alias for alias in expected if _shards_searched(response, alias) == 0]
    if missing:
        raise PartialResultError(
            f"cluster(s) {', '.join(missing)} searched no shard although the rule's indices "
            "exist there (shards unassigned or the indices gone); the answer would be partial",
            tuple(missing),
        )


def check_clusters(response: Mapping[str, Any]) -> None:
    """A cross-cluster search is refused unless every cluster answered in full: with
    `skip_unavailable` (the default since 8.15) a lost remote is only counted in
    `_clusters.skipped` and listed in `_clusters.details` with status `skipped` (or `partial`,
    `failed`), while the search itself succeeds without its data."""
    clusters = response.get("_clusters") or {}
    details: Mapping[str, Any] = clusters.get("details") or {}
    lost = {
        alias: info
        for alias, info in details.items()
        if info.get("status", SUCCESSFUL) != SUCCESSFUL
    }
    if lost:
        reasons = "; ".join(f"{alias}: {_cluster_reason(info)}" for alias, info in lost.items())
        raise PartialResultError(f"cluster(s) did not answer in full: {reasons}", tuple(lost))
    if clusters.get("skipped"):
        raise PartialResultError(
            f"{clusters['skipped']} of {clusters.get('total')} clusters were skipped (unavailable)",
            ("unknown",),
        )


def check_field_caps(response: Mapping[str, Any]) -> None:
    """Refuse a `_field_caps` answer that left indices out (`failures`: a remote cluster
    unreachable, a shard failing): the index list and the type groups would shrink silently,
    and a group searched by name would miss what lives there."""
    failures = response.get("failures") or []
    if not failures:
        return
    indices = sorted({str(name) for failure in failures for name in failure.get("indices", [])})
    reason = failures[0].get("failure", {})
    reason = reason.get("error", reason)  # 8.x nests it: {"failure": {"error": {...}}}
    clusters = tuple(sorted({cluster_of(index) for index in indices}))
    raise PartialResultError(
        f"_field_caps could not read {', '.join(indices) or 'some indices'} (cluster(s) "
        f"{', '.join(clusters)}): {reason.get('type', '')}: {reason.get('reason', '')}",
        clusters,
    )


def _cluster_reason(info: Mapping[str, Any]) -> str:
    failures = info.get("failures") or []
    reason = failures[0].get("reason", {}) if failures else {}
    text = f"{reason.get('type', '')}: {reason.get('reason', '')}" if reason else "no reason given"
    return f"{info.get('status')} ({text})"


def _shards_searched(response: Mapping[str, Any], alias: str) -> int | None:
    """How many shards `alias` searched (None: not told). Without `_clusters.details` only one
    cluster was searched: the top-level count is its own."""
    details: Mapping[str, Any] = (response.get("_clusters") or {}).get("details") or {}
    if not details:
        return int(response.get("_shards", {}).get("total", 0))
    info = details.get(alias)
    if info is None:
        return 0
    total = (info.get("_shards") or {}).get("total")
    return None if total is None else int(total)


def _shard_failure(shards: Mapping[str, Any]) -> None:
    failures = shards.get("failures") or [{}]
    first = failures[0]
    reason = first.get("reason", {})
    kind = str(reason.get("type", ""))
    text = (
        f"{shards['failed']} of {shards.get('total')} shards failed: "
        f"{kind}: {reason.get('reason', '')}"
    )
    lost = [f for f in failures if f.get("reason", {}).get("type") in SHARD_LOST]
    if lost:
        indices = sorted({str(f.get("index")) for f in lost})
        clusters = tuple(sorted({cluster_of(index) for index in indices}))
        raise PartialResultError(f"{text} (index {', '.join(indices)})", clusters)
    raise RequestError(text, reason=kind)
