"""Real notification receivers on loopback: an HTTP server (the webhook and apprise's `json://`)
and an SMTP server (aiosmtpd, apprise's `mailto://`), each recording what it got.

The HTTP receiver can be down (its port closed, connections refused) and come back on the same
port, and can hold requests unanswered (`hold`) to stand for a receiver that has not
acknowledged yet.
"""

from __future__ import annotations

import email
import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port on loopback nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Request:
    """One POST the HTTP receiver answered (or held)."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A threaded HTTP server on a fixed loopback port, recording POSTs."""

    port: int = field(default_factory=free_port)
    requests: list[Request] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._release.set()

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.arrived.set()
                receiver._release.wait()
                with receiver._lock:
                    receiver.requests.append(Request(self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port (connections are refused until `start`)."""
        if self._server is not None:
            self._release.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def hold(self) -> None:
        """Leave the next requests unanswered (recorded only once released)."""
        self.arrived.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def on(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def keys(self, path: str) -> Counter[str]:
        """How often each idempotency key arrived on `path`."""
        return Counter(request.headers.get("Idempotency-Key", "") for request in self.on(path))


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpReceiver:
    """An SMTP server on loopback (aiosmtpd), recording the mails."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = _Mailbox()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?to=soc@example.com&from=detector@example.com"

    @property
    def messages(self) -> list[email.message.Message]:
        return list(self.mailbox.messages)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
