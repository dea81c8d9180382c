"""Kibana: the packaged saved objects and their import through the saved objects API.

The objects (detector/kibana_objects/saved_objects.ndjson) were written for Kibana 8.19, the
oldest version supported: an 8.19 export imports into every later 8.x and 9.x, never the other
way round. They have fixed ids, so importing again with `overwrite=true` replaces them. The data
views' titles are set to the configured alerts and execution log indices at import time.

Import: `POST /api/saved_objects/_import?overwrite=true`, `kbn-xsrf` header, multipart/form-data
with the ndjson in a `file` part; success is the body's `success`, not the HTTP status.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import urllib3

from detector.errors import KibanaAuthError, KibanaError
from detector.settings import Settings

log = logging.getLogger(__name__)

OBJECTS_RESOURCE = "kibana_objects/saved_objects.ndjson"
ALERTS_DATA_VIEW = "newterms-detector-alerts"
EXECUTIONS_DATA_VIEW = "newterms-detector-executions"
IMPORT_PATH = "/api/saved_objects/_import?overwrite=true"
STATUS_PATH = "/api/status"


@cache
def packaged_objects() -> tuple[dict[str, Any], ...]:
    """The saved objects shipped with the package, in file order."""
    text = resources.files("detector").joinpath(OBJECTS_RESOURCE).read_text("utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def objects_for(settings: Settings) -> list[dict[str, Any]]:
    """The saved objects with the data views pointing at the configured indices."""
    titles = {
        ALERTS_DATA_VIEW: settings.alerts_index,
        EXECUTIONS_DATA_VIEW: settings.execution_log_index,
    }
    objects = [json.loads(json.dumps(item)) for item in packaged_objects()]
    for item in objects:
        if item["id"] in titles:
            item["attributes"]["title"] = titles[item["id"]]
    return objects


def to_ndjson(objects: list[dict[str, Any]]) -> bytes:
    """One JSON object per line."""
    return "".join(json.dumps(item, sort_keys=True) + "\n" for item in objects).encode()


def auth_header(settings: Settings) -> dict[str, str]:
    """Kibana credentials: its own user, else the Elasticsearch API key or user."""
    if settings.kibana_username and settings.kibana_password:
        return _basic(settings.kibana_username, settings.kibana_password.get_secret_value())
    if settings.es_api_key is not None:
        return {"Authorization": f"ApiKey {settings.es_api_key.get_secret_value()}"}
    if settings.es_username and settings.es_password:
        return _basic(settings.es_username, settings.es_password.get_secret_value())
    return {}


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class ImportResult:
    """What Kibana said about an import."""

    success_count: int
    errors: list[str]


class Kibana:
    """The few Kibana API calls `detector setup` needs."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.headers = headers
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=timeout), retries=urllib3.Retry(0, redirect=2)
        )

    def _request(self, method: str, path: str, **options: Any) -> urllib3.BaseHTTPResponse:
        headers = {**self.headers, **options.pop("headers", {})}
        try:
            return self.http.request(method, self.url + path, headers=headers, **options)
        except urllib3.exceptions.HTTPError as exc:
            raise KibanaError(f"cannot reach Kibana at {self.url}: {_cause(exc)}") from None

    def wait_available(self, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Poll `GET /api/status` until Kibana is available; wrong credentials fail at once.
        Says once what it waits for and for how long (`detector setup --kibana-wait`)."""
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                last = self._status_once()
                if last is None:
                    return
            except KibanaAuthError:
                raise
            except KibanaError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise KibanaError(f"Kibana was not available within {timeout:g}s: {last}")
            if not said:
                log.warning(
                    "Kibana at %s is not available (%s); waiting up to %g s for it (--kibana-wait)",
                    self.url,
                    last,
                    timeout,
                )
                said = True
            sleep(min(2.0, max(deadline - time.monotonic(), 0.0)))

    def _status_once(self) -> str | None:
        """None when available, else what is still wrong."""
        response = self._request("GET", STATUS_PATH)
        if response.status in (401, 403):
            raise KibanaAuthError(
                f"Kibana at {self.url} rejected the credentials ({response.status}); set "
                "DETECTOR_KIBANA_USERNAME and DETECTOR_KIBANA_PASSWORD"
            )
        level = _status_level(response)
        if response.status == 200 and level in ("available", "green"):
            return None
        return f"status {response.status}, level {level or 'unknown'}"

    def import_objects(self, ndjson: bytes) -> ImportResult:
        """Import with overwrite; raises `KibanaError` listing every object that failed."""
        boundary = f"detector-{uuid.uuid4().hex}"
        body = _multipart(boundary, "saved_objects.ndjson", ndjson)
        response = self._request(
            "POST",
            IMPORT_PATH,
            body=body,
            headers={
                "kbn-xsrf": "newterms-detector",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        answer = _json(response)
        if response.status in (401, 403):
            raise KibanaAuthError(
                f"Kibana rejected the import ({response.status}): {_message(answer)}"
            )
        if response.status != 200:
            raise KibanaError(f"Kibana refused the import ({response.status}): {_message(answer)}")
        errors = [_object_error(error) for error in answer.get("errors") or []]
        if answer.get("success") is not True:
            listed = "; ".join(errors) or _message(answer)
            count = answer.get("successCount", 0)
            raise KibanaError(f"Kibana imported {count} object(s) but reported errors: {listed}")
        return ImportResult(int(answer.get("successCount", 0)), errors)


def _cause(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def _status_level(response: urllib3.BaseHTTPResponse) -> str | None:
    body = _json(response)
    overall = body.get("status", {}).get("overall", {}) if isinstance(body, dict) else {}
    level = overall.get("level") or overall.get("state")
    return str(level) if level else None


def _json(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    try:
        body = json.loads(response.data or b"{}")
    except ValueError:
        return {"message": response.data[:300].decode(errors="replace")}
    return body if isinstance(body, dict) else {"message": str(body)[:300]}


def _message(answer: dict[str, Any]) -> str:
    return str(answer.get("message") or answer.get("error") or answer)[:500]


def _object_error(error: dict[str, Any]) -> str:
    title = error.get("meta", {}).get("title") or error.get("title")
    detail = error.get("error", {})
    kind = detail.get("type", "error")
    extra = detail.get("message") or ", ".join(
        f"{ref.get('type')}/{ref.get('id')}" for ref in detail.get("references", [])
    )
    named = f" ({title})" if title else ""
    return f"{error.get('type')}/{error.get('id')}{named}: {kind}{f': {extra}' if extra else ''}"


def _multipart(boundary: str, filename: str, content: bytes) -> bytes:
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode()


def import_saved_objects(settings: Settings, url: str, wait: float) -> ImportResult:
    """Wait for Kibana at `url`, then import the saved objects for these settings."""
    kibana = Kibana(url, auth_header(settings))
    kibana.wait_available(wait)
    return kibana.import_objects(to_ndjson(objects_for(settings)))
