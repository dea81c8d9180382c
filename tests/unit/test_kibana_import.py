"""`detector setup`'s Kibana import against a local stub that enforces what Kibana's saved
objects import API requires, and answers the way Kibana does."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from detector.cli import main
from detector.deployment import kibana
from detector.errors import KibanaAuthError, KibanaError
from detector.settings import Settings

AUTH = "Basic " + base64.b64encode(b"elastic:secret").decode()


class KibanaStub(BaseHTTPRequestHandler):
    """`GET /api/status` and `POST /api/saved_objects/_import`, with Kibana's checks."""

    answer: ClassVar[dict[str, Any]] = {}
    # (status, body) to answer a well-formed import with instead, e.g. a proxy's or Kibana's 4xx.
    refusal: ClassVar[tuple[int, dict[str, Any]] | None] = None
    status_level = "available"
    received: ClassVar[list[list[dict[str, Any]]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != AUTH:
            return self._send(401, {"statusCode": 401, "message": "Unauthorized"})
        code = 200 if self.status_level == "available" else 503
        self._send(code, {"status": {"overall": {"level": self.status_level}}})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/api/saved_objects/_import":
            return self._send(404, {"message": "Not Found"})
        if self.headers.get("Authorization") != AUTH:
            return self._send(401, {"statusCode": 401, "message": "Unauthorized"})
        if "kbn-xsrf" not in self.headers:
            return self._send(
                400, {"statusCode": 400, "message": "Request must contain a kbn-xsrf header."}
            )
        if parse_qs(url.query).get("overwrite") != ["true"]:
            return self._send(400, {"message": "the test expects overwrite=true"})
        body = self.rfile.read(int(self.headers["Content-Length"]))
        objects = _file_part(self.headers.get("Content-Type", ""), body)
        if objects is None:
            return self._send(415, {"message": "expected multipart/form-data with a file part"})
        if self.refusal is not None:
            return self._send(*self.refusal)
        self.received.append(objects)
        self._send(200, self.answer or {"success": True, "successCount": len(objects)})


def _file_part(content_type: str, body: bytes) -> list[dict[str, Any]] | None:
    if not content_type.startswith("multipart/form-data"):
        return None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            assert str(part.get_filename()).endswith(".ndjson")
            return [json.loads(line) for line in payload.decode().splitlines() if line]
    return None


@pytest.fixture
def stub() -> Iterator[str]:
    KibanaStub.answer = {}
    KibanaStub.refusal = None
    KibanaStub.status_level = "available"
    KibanaStub.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KibanaStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, es_username="elastic", es_password="secret", **values)


def test_import_succeeds_and_sends_every_object(stub: str) -> None:
    result = kibana.import_saved_objects(_settings(), stub, wait=5)
    assert result.success_count == len(kibana.packaged_objects())
    (sent,) = KibanaStub.received
    assert [item["id"] for item in sent] == [item["id"] for item in kibana.packaged_objects()]


def test_a_refused_import_is_an_error_with_kibanas_status_and_message(stub: str) -> None:
    KibanaStub.refusal = (
        400,
        {"statusCode": 400, "message": "Request must contain a kbn-xsrf header."},
    )
    with pytest.raises(
        KibanaError,
        match=r"^Kibana refused the import \(400\): Request must contain a kbn-xsrf header\.$",
    ) as raised:
        kibana.import_saved_objects(_settings(), stub, wait=5)
    assert not isinstance(raised.value, KibanaAuthError)
    assert KibanaStub.received == []


def test_success_false_is_an_error_listing_each_object(stub: str) -> None:
    KibanaStub.answer = {
        "success": False,
        "successCount": 6,
        "errors": [
            {
                "id": "newterms-detector-overview",
                "type": "dashboard",
                "meta": {"title": "newterms-detector: overview"},
                "error": {"type": "missing_references", "references": [
                    {"type": "visualization", "id": "gone"}]},
            },
            {"id": "x", "type": "search", "error": {"type": "unsupported_type"}},
        ],
    }  # fmt: skip
    with pytest.raises(KibanaError) as raised:
        kibana.import_saved_objects(_settings(), stub, wait=5)
    message = str(raised.value)
    assert "imported 6 object(s)" in message
    assert "dashboard/newterms-detector-overview (newterms-detector: overview): " in message
    assert "missing_references: visualization/gone" in message
    assert "search/x: unsupported_type" in message


def test_wrong_credentials_fail_at_once(stub: str) -> None:
    settings = _settings(kibana_username="elastic", kibana_password="wrong")
    with pytest.raises(KibanaAuthError, match="rejected the credentials \\(401\\)"):
        kibana.import_saved_objects(settings, stub, wait=60)


def test_waits_for_kibana_to_be_available(stub: str) -> None:
    KibanaStub.status_level = "degraded"
    client = kibana.Kibana(stub, kibana.auth_header(_settings()))
    with pytest.raises(KibanaError, match="not available within 0s: status 503"):
        client.wait_available(0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_waiting_for_kibana_says_once_what_it_waits_for_and_how_long(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    client = kibana.Kibana(url, kibana.auth_header(_settings()))
    started = time.monotonic()
    with caplog.at_level("DEBUG"), pytest.raises(KibanaError, match="not available within 3s"):
        client.wait_available(3)
    assert 3 <= time.monotonic() - started < 5
    [record] = [r for r in caplog.records if r.name == "detector.deployment.kibana"]
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(f"Kibana at {url} is not available (cannot reach")
    assert record.getMessage().endswith("waiting up to 3 s for it (--kibana-wait)")


def test_api_key_is_used_when_no_kibana_user_is_set() -> None:
    settings = Settings(_env_file=None, es_api_key="ZW5jb2RlZA==")
    assert kibana.auth_header(settings) == {"Authorization": "ApiKey ZW5jb2RlZA=="}


def _run_setup(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    # Only the Kibana step: Elasticsearch is not part of this test.
    monkeypatch.setattr("detector.es.client.Elastic", _NoElastic)
    monkeypatch.setattr(
        "detector.deployment.provision.install_templates", lambda elastic, settings: []
    )
    monkeypatch.setenv("DETECTOR_ES_USERNAME", "elastic")
    monkeypatch.setenv("DETECTOR_ES_PASSWORD", "secret")
    monkeypatch.chdir("/")  # no .env
    return main(["setup", *args])


class _NoElastic:
    def __init__(self, settings: Settings) -> None:
        return

    def wait_ready(self) -> None:
        return

    def close(self) -> None:
        return

    def __enter__(self) -> _NoElastic:
        return self

    def __exit__(self, *_exc: object) -> None:
        return


def test_setup_command_exit_codes(
    stub: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_setup(["--kibana-url", stub], monkeypatch) == 0
    assert "Kibana: imported 8 saved object(s)" in capsys.readouterr().out
    KibanaStub.answer = {"success": False, "successCount": 0, "errors": []}
    assert _run_setup(["--kibana-url", stub], monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Kibana imported 0 object(s) but reported errors")
    assert "Traceback" not in err


def test_setup_command_kibana_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    assert _run_setup(["--kibana-url", url, "--kibana-wait", "0"], monkeypatch) == 1
    err = capsys.readouterr().err
    assert "error: Kibana was not available within 0s: cannot reach Kibana at" in err
    assert "Traceback" not in err
