"""The one module that talks to Elasticsearch.

It builds the client from settings, waits for readiness, retries transient failures and
translates every client exception into `detector.errors`, so no other module imports the client.

Retries: the client's own retries are switched off (`max_retries=0`) and tenacity owns them, so
the two never stack. Only transient failures are retried (connection errors, timeouts, 429 and
502/503/504, the same statuses elastic-transport retries by default), with exponential backoff and
jitter, bounded both in attempts and in seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import elastic_transport
import elasticsearch
from elasticsearch import Elasticsearch
from elasticsearch.serializer import OrjsonSerializer
from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_before_delay,
)

from detector.errors import (
    ElasticsearchError,
    PartialResultError,
    RequestError,
    TlsError,
    UnavailableError,
)
from detector.es.documents import DocumentRequests
from detector.es.responses import (
    ClusterInfo,
    RequestStats,
    check_field_caps,
    check_msearch_item,
    check_shards,
    cluster_info,
    translate,
)
from detector.es.retrying import backoff, log_retry, until, worth_waiting_for
from detector.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)


def build_client(settings: Settings) -> Elasticsearch:
    """An `Elasticsearch` client configured from settings, with its own retries switched off."""
    options: dict[str, Any] = {
        "request_timeout": settings.es_request_timeout.total_seconds(),
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": settings.es_verify_certs,
        # orjson decodes a 10,000-bucket composite page (~600 kB) ~5x faster than json
        # (measured: 58 ms against 12 ms on the benchmark machine), and encodes 10,000-term
        # `include` lists ~7x faster; the client ships the serializer (elasticsearch>=8.12).
        "serializer": OrjsonSerializer(),
    }
    if settings.es_ca_certs is not None:
        options["ca_certs"] = str(settings.es_ca_certs)
    if settings.es_api_key is not None:
        options["api_key"] = settings.es_api_key.get_secret_value()
    elif settings.es_username is not None and settings.es_password is not None:
        options["basic_auth"] = (settings.es_username, settings.es_password.get_secret_value())
    if not settings.es_verify_certs:
        options["ssl_show_warn"] = False
    return Elasticsearch(settings.es_url, **options)


class Elastic(DocumentRequests):
    """Elasticsearch access for the detector: every call retried, translated and counted."""

    def __init__(self, settings: Settings, client: Elasticsearch | None = None) -> None:
        self.settings = settings
        self.client = client if client is not None else build_client(settings)
        self.stats = RequestStats()

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def __enter__(self) -> Elastic:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def call(self, request: Callable[[Elasticsearch], T]) -> T:
        """Run one request, retrying transient failures within the configured bounds."""
        retrying = Retrying(
            retry=retry_if_exception_type(UnavailableError),
            # `stop_before_delay`: never sleep past the bound (`stop_after_delay` only looks
            # after the sleep, so 30 s could become 31).
            stop=stop_after_attempt(self.settings.es_retry_attempts)
            | stop_before_delay(self.settings.es_retry_max_seconds.total_seconds()),
            wait=backoff(10.0),
            before_sleep=log_retry(log, "Elasticsearch request failed"),
            reraise=True,
        )
        result: T = retrying(self._once, request)
        return result

    def _once(self, request: Callable[[Elasticsearch], T]) -> T:
        started = time.monotonic()
        self.stats.requests += 1
        try:
            return request(self.client)
        except (elastic_transport.TransportError, elasticsearch.ApiError) as exc:
            error = translate(exc)
            if isinstance(error, PartialResultError):
                error = self._named(error)
            raise error from exc
        finally:
            self.stats.seconds += time.monotonic() - started

    def _named(self, error: PartialResultError) -> PartialResultError:
        """`error` with the alias of a remote Elasticsearch named by its address only (a
        refused connection), looked up in `_remote/info`; as it is if that fails too."""
        if not any(":" in cluster for cluster in error.clusters):
            return error
        try:
            remotes = self.remote_info()
        except ElasticsearchError:
            return error
        aliases = {seed: alias for alias, info in remotes.items() for seed in info.get("seeds", [])}
        names = tuple(aliases.get(cluster, cluster) for cluster in error.clusters)
        message = str(error)
        for address, alias in zip(error.clusters, names, strict=True):
            message = message.replace(f"cluster {address}", f"cluster {alias} ({address})", 1)
        return PartialResultError(message, names)

    def resolve_cluster(self, names: Sequence[str]) -> dict[str, Any]:
        """Each cluster these patterns name: `connected`, `skip_unavailable`, `version`..."""
        return self._body(lambda es: es.indices.resolve_cluster(name=list(names)))

    def remote_info(self) -> dict[str, Any]:
        """The remote clusters configured (`GET _remote/info`): alias -> `connected`,
        `skip_unavailable`, `seeds` (or `proxy_address`)..."""
        return self._body(lambda es: es.cluster.remote_info())

    def _body(self, request: Callable[[Elasticsearch], Any]) -> dict[str, Any]:
        """`call`, for requests whose answer is a JSON object."""
        body: dict[str, Any] = self.call(request).body
        return body

    def info(self) -> ClusterInfo:
        """The cluster's name and version."""
        return self.call(cluster_info)

    def wait_ready(self, timeout: float | None = None) -> ClusterInfo:
        """Wait until the cluster answers and is at least yellow, for at most `timeout` seconds.

        Says once what it waits for and for how long (each retry is a DEBUG line), then raises
        one `UnavailableError` saying how long it waited. A TLS failure is raised at once:
        waiting does not change what the node speaks or which certificate it shows."""
        budget = self.settings.es_ready_timeout.total_seconds() if timeout is None else timeout
        started = time.monotonic()
        urls = ", ".join(self.settings.es_url)
        try:
            return self._ready_once()
        except TlsError:
            raise
        except UnavailableError as exc:
            if budget <= 0:
                raise
            log.warning(
                "Elasticsearch at %s is not ready (%s); waiting up to %g s for it to answer "
                "and be at least yellow",
                urls,
                exc,
                budget,
            )
        # The whole budget is waited, and no more: the last sleep ends at the deadline, where
        # one last attempt is made.
        deadline = started + budget
        retrying = Retrying(
            retry=retry_if_exception(worth_waiting_for),
            stop=stop_after_delay(max(budget - (time.monotonic() - started), 0.0)),
            wait=until(deadline, backoff(2.0)),
            before_sleep=log_retry(log, "Elasticsearch is not ready yet", logging.DEBUG),
            reraise=True,
        )
        try:
            return retrying(self._ready_once)
        except TlsError:
            raise
        except UnavailableError as exc:
            raise UnavailableError(
                f"{exc} (waited {budget:g} s for Elasticsearch at {urls} to answer and be at "
                "least yellow)"
            ) from exc

    def _ready_once(self) -> ClusterInfo:
        info = self._once(cluster_info)
        health = self._once(
            lambda es: es.cluster.health(wait_for_status="yellow", timeout="1s")
        ).body
        if health.get("timed_out"):
            raise UnavailableError(f"cluster health is {health.get('status')}, waiting for yellow")
        return info

    def search(
        self, index: Iterable[str], body: Mapping[str, Any], expect: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Search; missing indices are not an error, but a partial answer is (partial = wrong):
        a cluster skipped, failed shards, or a cluster of `expect` (aliases that hold the
        indices, `(local)` for this one) that searched no shard (`responses.check_shards`)."""
        names = ",".join(index)
        response: dict[str, Any] = self.call(
            lambda es: es.search(
                index=names,
                body=dict(body),
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        ).body
        check_shards(response, expect)
        return response

    def msearch(
        self,
        index: Iterable[str],
        bodies: Sequence[Mapping[str, Any]],
        expect: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """Several searches in one `_msearch`, each as `search` would send it.

        A search that failed or has failed shards raises like `search` does; a search rejected
        as busy (429, 50x) makes the whole request be retried.
        """
        if not bodies:
            return []
        header = {"index": ",".join(index), "ignore_unavailable": True, "allow_no_indices": True}
        expected = tuple(expect)
        searches: list[Mapping[str, Any]] = []
        for body in bodies:
            searches.extend((header, dict(body)))

        def request(es: Elasticsearch) -> list[dict[str, Any]]:
            responses: list[dict[str, Any]] = es.msearch(searches=searches).body["responses"]
            for response in responses:
                check_msearch_item(response, expected)
            return responses

        return self.call(request)

    def matching_indices(self, pattern: str) -> list[str]:
        """Names of the indices (and data streams) a pattern matches; empty when none do (a
        concrete name that does not exist yet included: `_resolve/index` answers it with 404)."""
        try:
            body = self.resolve_index(pattern)
        except RequestError as exc:
            if exc.status == 404:
                return []
            raise
        names = [item["name"] for key in ("indices", "data_streams") for item in body.get(key, [])]
        return sorted(names)

    def resolve_index(self, name: str, expand_wildcards: str = "open") -> dict[str, Any]:
        """The indices, aliases and data streams `name` stands for (404 if a plain name is not)."""
        return self._body(
            lambda es: es.indices.resolve_index(name=name, expand_wildcards=expand_wildcards)
        )

    def get_mapping(self, index: str) -> dict[str, Any]:
        """The mappings of `index`, keyed by concrete index name."""
        return self._body(lambda es: es.indices.get_mapping(index=index))

    def put_index_template(self, name: str, body: Mapping[str, Any]) -> None:
        """Create or replace a composable index template."""
        self.call(lambda es: es.indices.put_index_template(name=name, body=dict(body)))

    def create_index(self, name: str, body: Mapping[str, Any] | None = None) -> bool:
        """Create `name` from `body` and the matching templates; False if it already exists
        (another process, or a write that auto-created it from the template, won the race)."""
        request = None if body is None else dict(body)
        try:
            self.call(lambda es: es.indices.create(index=name, body=request))
        except RequestError as error:
            if error.status == 400 and "resource_already_exists" in (error.reason or ""):
                return False
            raise
        return True

    def put_mapping(self, name: str, mappings: Mapping[str, Any]) -> None:
        """Add fields (and dynamic templates) to the mapping of the index `name`."""
        self.call(lambda es: es.indices.put_mapping(index=name, body=dict(mappings)))

    def ensure_index(self, name: str, template_name: str, template_body: Mapping[str, Any]) -> bool:
        """Put the template, then create the index if missing (race-safe); True if created."""
        self.put_index_template(template_name, template_body)
        return self.create_index(name)

    def count(self, index: Iterable[str], query: Mapping[str, Any]) -> int:
        """How many documents of `index` match `query` (missing indices count 0)."""
        names = ",".join(index)
        body = self._body(
            lambda es: es.count(
                index=names, query=dict(query), ignore_unavailable=True, allow_no_indices=True
            )
        )
        return int(body["count"])

    def delete_index(self, name: str) -> None:
        """Delete the index `name`; one that does not exist is not an error."""
        self.call(lambda es: es.indices.delete(index=name, ignore_unavailable=True))

    # Security APIs (`detector setup`); native roles and API keys need the `.security` index.

    def authenticate(self) -> dict[str, Any]:
        """Who the credentials authenticate as; bad ones raise `AuthenticationError`."""
        return self._body(lambda es: es.security.authenticate())

    def unreadable(self, patterns: Sequence[str]) -> list[str] | None:
        """The patterns these credentials may not read; None if it cannot be asked (no security).

        Searches silently leave out indices a user may not read (a wildcard expands only to
        authorized indices), so a missing privilege would look like "no data", not an error.
        """
        wanted = [{"names": list(patterns), "privileges": ["read"]}]
        try:
            body = self._body(lambda es: es.security.has_privileges(index=wanted))
        except RequestError:
            return None
        return [name for name, granted in body["index"].items() if not granted.get("read")]

    def field_types(
        self, patterns: Sequence[str], fields: Sequence[str]
    ) -> tuple[list[str], dict[str, dict[str, list[str]]]]:
        """The indices `patterns` match, and field -> type -> the indices that map it so
        (`_field_caps`; a field no index maps is left out). Elasticsearch names the indices of
        a type only when the field has several types; here they are always named."""
        body = self._body(
            lambda es: es.field_caps(
                index=",".join(patterns),
                # A list: the client joins it with bare commas, but escapes a comma in a
                # string (`%2C`), which names one field called "a,b" and matches nothing.
                fields=list(fields),
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        )
        check_field_caps(body)
        every = list(body.get("indices", []))
        types = {
            field: {kind: list(caps.get("indices") or every) for kind, caps in kinds.items()}
            for field, kinds in body.get("fields", {}).items()
        }
        return every, types

    def put_role(self, name: str, descriptor: Mapping[str, Any]) -> None:
        """Create or update the native role `name` (`cluster`, `indices`, `metadata`...)."""
        self.call(lambda es: es.security.put_role(name=name, **descriptor))

    def create_api_key(
        self, name: str, role_descriptors: Mapping[str, Any], metadata: Mapping[str, Any]
    ) -> str:
        """A new API key limited to `role_descriptors`; returns its `encoded` form."""
        roles, meta = dict(role_descriptors), dict(metadata)
        body = self._body(
            lambda es: es.security.create_api_key(name=name, role_descriptors=roles, metadata=meta)
        )
        return str(body["encoded"])

    def refresh(self, index: str) -> None:
        """Make recent writes searchable."""
        self.call(lambda es: es.indices.refresh(index=index, ignore_unavailable=True))
