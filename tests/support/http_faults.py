"""A small HTTP reverse proxy on 127.0.0.1 in front of the node that rejects chosen requests.

Every request is forwarded as is (method, path, headers, body) and its answer returned, except
one whose body contains any of the `poison` byte strings while `poison` is set: that one gets
Elasticsearch's own kind of answer to a bad request (400, `mapper_parsing_exception`) without
reaching the node. So a test makes exactly the executions fail that would write an alert naming
a poison source, the way a document the alerts index rejects does, while everything else runs
against the real node.

`Fault`s make other failures, each for a limited number of requests whose path and body hold its
marker: refused without reaching the node, or `lost`: executed by the node, then answered with
the fault instead of the node's answer (a request left unanswered; the client never knows what
was written).

`on_request`, when given, is called with each request's path and body before it goes on: a test
acts at a chosen moment of an execution (kills a node between two of its searches).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
JSON = "application/json"


@dataclass
class Fault:
    """Answer `status` (429: the node is busy) to the next `times` requests whose path holds
    `path` and whose body holds `marker`, after the node executed them if `lost`."""

    marker: bytes
    times: int
    path: str = "/_bulk"
    lost: bool = False
    status: int = 429

    def matches(self, path: str, body: bytes) -> bool:
        """Whether this request gets the fault (and counts it)."""
        if self.times <= 0 or self.path not in path or self.marker not in body:
            return False
        self.times -= 1
        return True


class FaultProxy:
    """Forwards http://127.0.0.1:`port` to `target_url`; rejects bodies holding `poison`, and
    answers the requests of `faults` with their fault."""

    def __init__(
        self,
        target_url: str,
        poison: tuple[bytes, ...] = (),
        faults: tuple[Fault, ...] = (),
        on_request: Callable[[str, bytes], None] | None = None,
    ) -> None:
        parts = urlsplit(target_url)
        if parts.scheme != "http":
            raise ValueError(f"only http targets are supported, not {target_url}")
        self.poison = poison
        self.faults = faults
        self.rejected = 0
        self.faulted = 0
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if on_request is not None:
                    on_request(self.path, body)
                if any(marker in body for marker in proxy.poison):
                    proxy.rejected += 1
                    self._answer(400, json.dumps(_rejection()).encode(), "application/json")
                    return
                with lock:
                    fault = next((f for f in proxy.faults if f.matches(self.path, body)), None)
                if fault is None or fault.lost:
                    status, data, kind, headers = self._upstream(body)
                if fault is None:
                    self._answer(status, data, kind, headers)
                    return
                proxy.faulted += 1
                self._answer(fault.status, json.dumps(_busy(fault.status)).encode(), JSON)

            def _upstream(self, body: bytes) -> tuple[int, bytes, str, list[tuple[str, str]]]:
                host = parts.hostname or "127.0.0.1"
                upstream = http.client.HTTPConnection(host, parts.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body or None, headers)
                answer = upstream.getresponse()
                data = answer.read()
                kind = answer.getheader("Content-Type") or JSON
                upstream.close()
                return answer.status, data, kind, answer.getheaders()

            def _answer(
                self,
                status: int,
                data: bytes,
                kind: str,
                headers: list[tuple[str, str]] | None = None,
            ) -> None:
                self.send_response(status)
                for key, value in headers or []:
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-type":
                        self.send_header(key, value)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The URL the detector uses instead of the node's."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _rejection() -> dict[str, object]:
    reason = "failed to parse field [source.address]: injected by the test's fault proxy"
    cause = {"type": "mapper_parsing_exception", "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": 400}


def _busy(status: int) -> dict[str, object]:
    reason = "rejected execution: injected by the test's fault proxy"
    cause = {"type": "es_rejected_execution_exception", "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}
