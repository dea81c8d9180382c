"""A small fault-injecting TCP proxy on 127.0.0.1, between `detector run` replicas and the node.

It forwards bytes both ways; `down()` closes every open connection and refuses (accepts and
closes at once) new ones until `up()`, which is what an unreachable Elasticsearch looks like to
the client; `delay` holds each chunk sent to the node for that many seconds (a slow network),
so an execution lasts long enough to be caught in the middle.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit

CHUNK = 65536


class Proxy:
    """Forwards 127.0.0.1:`port` to the node at `target_url`."""

    def __init__(self, target_url: str, delay: float = 0.0) -> None:
        parts = urlsplit(target_url)
        self.scheme = parts.scheme
        self.target = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.delay = delay
        self._refusing = threading.Event()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        """The URL the replicas use instead of the node's."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def down(self) -> None:
        """Cut every connection and refuse new ones."""
        self._refusing.set()
        with self._lock:
            for sock in list(self._sockets):
                _close(sock)
            self._sockets.clear()

    def up(self) -> None:
        """Forward again."""
        self._refusing.clear()

    def close(self) -> None:
        """Stop listening and cut every connection."""
        self._closed.set()
        self.down()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing.is_set():
                _close(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_node: bool) -> None:
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                if to_node and self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _close(sock)
            with self._lock:
                self._sockets.difference_update((source, sink))


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
