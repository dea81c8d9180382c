"""Retries and error translation of `detector.es.client.Elastic`, against a scripted local HTTP
stub."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from detector.cli import main
from detector.errors import (
    AuthenticationError,
    BulkError,
    RequestError,
    TlsError,
    UnavailableError,
)
from detector.es.client import Elastic
from detector.settings import Settings

PRODUCT_HEADER = {"X-Elastic-Product": "Elasticsearch"}
EMPTY_SEARCH = {
    "took": 1,
    "timed_out": False,
    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
    "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []},
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubElasticsearch:
    """Answers each request with the next scripted (status, body); records every request."""

    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def answer(self, status: int, body: dict[str, Any]) -> None:
        self.answers.append((status, body))


def _handler(stub: StubElasticsearch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            stub.requests.append(Recorded(self.command, self.path, headers, body))
            status, answer = stub.answers.pop(0) if stub.answers else (500, {"error": "unscripted"})
            payload = json.dumps(answer).encode()
            self.send_response(status)
            headers = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
            if 200 <= status < 300:
                headers.update(PRODUCT_HEADER)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stub() -> Iterator[StubElasticsearch]:
    stub = StubElasticsearch()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()


def _elastic(url: str, **values: Any) -> Elastic:
    options: dict[str, Any] = {
        "_env_file": None,
        "es_url": [url],
        "es_retry_attempts": 3,
        "es_retry_max_seconds": 10,
        **values,
    }
    return Elastic(Settings(**options))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _bulk_item(doc_id: str, status: int, error: str | None = None) -> dict[str, Any]:
    outcome: dict[str, Any] = {"_index": "alerts", "_id": doc_id, "status": status}
    if error:
        outcome["error"] = {"type": error, "reason": f"{error} for {doc_id}"}
    return {"create": outcome}


def test_a_busy_answer_is_retried_and_the_next_answer_returned(stub):
    stub.answer(429, {"error": {"type": "es_rejected_execution_exception", "reason": "busy"}})
    stub.answer(200, EMPTY_SEARCH)
    elastic = _elastic(stub.url)

    response = elastic.search(["logs-x"], {"query": {"match_all": {}}})

    assert response["hits"]["hits"] == []
    assert len(stub.requests) == 2
    assert elastic.stats.requests == 2


def test_a_bad_request_is_not_retried_and_raises_request_error(stub):
    stub.answer(400, {"error": {"type": "parsing_exception", "reason": "unknown query [nope]"}})
    elastic = _elastic(stub.url)

    with pytest.raises(RequestError) as raised:
        elastic.search(["logs-x"], {"query": {"nope": {}}})

    assert raised.value.status == 400
    assert "parsing_exception: unknown query [nope]" in str(raised.value)
    assert len(stub.requests) == 1


def test_wrong_credentials_are_not_retried_and_raise_authentication_error(stub):
    stub.answer(401, {"error": {"type": "security_exception", "reason": "unable to authenticate"}})
    elastic = _elastic(stub.url, es_username="elastic", es_password="wrong")

    with pytest.raises(AuthenticationError, match="401"):
        elastic.info()

    assert len(stub.requests) == 1


def test_a_refused_connection_is_retried_as_configured_then_raises_unavailable():
    elastic = _elastic(f"http://127.0.0.1:{_closed_port()}", es_retry_max_seconds=5)
    started = time.monotonic()

    with pytest.raises(UnavailableError, match="cannot reach Elasticsearch"):
        elastic.info()

    assert elastic.stats.requests == 3
    assert time.monotonic() - started < 5 + 1


def test_the_api_key_is_sent_as_apikey_authorization(stub):
    stub.answer(200, EMPTY_SEARCH)
    elastic = _elastic(stub.url, es_api_key=SecretStr("a2V5OnNlY3JldA=="))

    elastic.search(["logs-x"], {"query": {"match_all": {}}})

    assert stub.requests[0].headers["authorization"] == "ApiKey a2V5OnNlY3JldA=="


def test_bulk_items_rejected_with_429_are_sent_again_and_reported_created(stub):
    stub.answer(
        200, {"errors": True, "items": [_bulk_item("a", 429, "busy"), _bulk_item("b", 201)]}
    )
    stub.answer(200, {"errors": False, "items": [_bulk_item("a", 201)]})
    elastic = _elastic(stub.url)

    result = elastic.bulk_create("alerts", {"a": {"n": 1}, "b": {"n": 2}})

    assert sorted(result.created) == ["a", "b"]
    assert result.rejected == []
    assert len(stub.requests) == 2
    resent = [json.loads(line) for line in stub.requests[1].body.splitlines()]
    assert resent == [{"create": {"_index": "alerts", "_id": "a"}}, {"n": 1}]


def test_a_bulk_item_rejected_with_400_raises_bulk_error_naming_the_item(stub):
    rejected = _bulk_item("a", 400, "document_parsing_exception")
    stub.answer(200, {"errors": True, "items": [rejected, _bulk_item("b", 201)]})
    elastic = _elastic(stub.url)

    with pytest.raises(BulkError) as raised:
        elastic.bulk_create("alerts", {"a": {"n": "x"}, "b": {"n": 2}})

    assert len(raised.value.items) == 1
    item = raised.value.items[0]
    assert (item["_id"], item["status"]) == ("a", 400)
    assert item["error"]["type"] == "document_parsing_exception"
    assert len(stub.requests) == 1


class _Client:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_elastic_as_a_context_manager_closes_its_client() -> None:
    client = _Client()
    with Elastic(Settings(_env_file=None), client=client):  # type: ignore[arg-type]
        assert not client.closed
    assert client.closed


def test_elastic_closes_its_client_when_the_block_raises() -> None:
    client = _Client()
    with pytest.raises(RuntimeError), Elastic(Settings(_env_file=None), client=client):  # type: ignore[arg-type]
        raise RuntimeError("boom")
    assert client.closed


def test_each_retry_is_logged_with_its_reason(stub, caplog):
    stub.answer(503, {"error": {"type": "unavailable", "reason": "master not discovered"}})
    stub.answer(200, EMPTY_SEARCH)
    with caplog.at_level("INFO", logger="detector.es.client"):
        _elastic(stub.url).search(["logs-x"], {"query": {"match_all": {}}})
    [record] = [record for record in caplog.records if record.name == "detector.es.client"]
    assert record.levelname == "INFO"
    assert "Elasticsearch request failed" in record.getMessage()
    assert "master not discovered" in record.getMessage()
    assert "attempt 1 failed, retrying in" in record.getMessage()


def test_the_retry_time_bound_is_never_passed(stub):
    for _ in range(50):
        stub.answer(503, {"error": {"type": "unavailable", "reason": "busy"}})
    elastic = _elastic(stub.url, es_retry_attempts=50, es_retry_max_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(UnavailableError):
        elastic.search(["logs-x"], {"query": {"match_all": {}}})
    # Each answer is immediate: only the sleeps count, and none may end past the bound.
    assert time.monotonic() - started < 1.5 + 0.3


def test_waiting_for_elasticsearch_says_what_it_waits_for(caplog):
    url = f"http://127.0.0.1:{_closed_port()}"
    with caplog.at_level("INFO", logger="detector.es.client"), pytest.raises(UnavailableError):
        _elastic(url).wait_ready(0.5)
    [first, *_retries] = [
        record for record in caplog.records if record.name == "detector.es.client"
    ]
    assert first.getMessage().startswith(f"Elasticsearch at {url} is not ready (cannot reach")
    assert first.getMessage().endswith(
        "waiting up to 0.5 s for it to answer and be at least yellow"
    )


def test_waiting_for_elasticsearch_says_it_once_then_raises_one_error_saying_how_long(caplog):
    url = f"http://127.0.0.1:{_closed_port()}"
    with (
        caplog.at_level("DEBUG", logger="detector.es.client"),
        pytest.raises(UnavailableError) as raised,
    ):
        _elastic(url).wait_ready(2)
    records = [record for record in caplog.records if record.name == "detector.es.client"]
    assert [record.levelname for record in records if record.levelno > logging.DEBUG] == ["WARNING"]
    assert len(records) > 2  # the retries are there, at DEBUG
    assert str(raised.value).startswith("cannot reach Elasticsearch: ")
    assert str(raised.value).endswith(
        f"(waited 2 s for Elasticsearch at {url} to answer and be at least yellow)"
    )


def test_https_to_a_plain_http_node_fails_at_once_naming_the_cause(stub, caplog):
    url = stub.url.replace("http://", "https://")
    started = time.monotonic()
    plain_http = "the node answers plain HTTP: use an http:// URL"
    with (
        caplog.at_level("DEBUG", logger="detector.es.client"),
        pytest.raises(TlsError, match=plain_http),
    ):
        _elastic(url, es_verify_certs=False).wait_ready(30)
    assert time.monotonic() - started < 5
    assert not [record for record in caplog.records if record.name == "detector.es.client"]


@pytest.mark.parametrize("command", ["check", "once"])
def test_an_unreachable_node_is_one_line_of_waiting_and_one_error(
    command, monkeypatch, capsys, tmp_path
):
    monkeypatch.chdir(tmp_path)
    port = _closed_port()
    monkeypatch.setenv("DETECTOR_ES_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DETECTOR_ES_READY_TIMEOUT", "2s")
    started = time.monotonic()

    assert main([command]) == 1

    assert 2 <= time.monotonic() - started < 10
    waiting, error = capsys.readouterr().err.splitlines()
    assert "waiting up to 2 s for it to answer and be at least yellow" in waiting
    assert error.startswith("error: cannot reach Elasticsearch: ")
    assert error.endswith(
        f"(waited 2 s for Elasticsearch at http://127.0.0.1:{port} to answer and be at least "
        "yellow)"
    )


def test_a_bulk_item_the_response_leaves_out_is_an_error_not_a_silent_loss(stub):
    stub.answer(200, {"errors": False, "items": [_bulk_item("a", 201)]})
    elastic = _elastic(stub.url)

    with pytest.raises(BulkError) as raised:
        elastic.bulk_create("alerts", {"a": {"n": 1}, "b": {"n": 2}})

    [item] = raised.value.items
    assert item["_id"] == "b"
    assert item["error"] == "no answer for this item in the response"


def test_bulk_items_refused_as_busy_are_resent_after_a_backoff(stub):
    stub.answer(200, {"errors": True, "items": [_bulk_item("a", 429, "es_rejected_execution")]})
    stub.answer(200, {"errors": False, "items": [_bulk_item("a", 201)]})
    elastic = _elastic(stub.url)

    started = time.monotonic()
    result = elastic.bulk_create("alerts", {"a": {"n": 1}})

    assert result.created == ["a"]
    assert time.monotonic() - started >= 0.2  # the first backoff step, never an instant resend
