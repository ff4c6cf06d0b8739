"""A scripted HTTP service on loopback: the stand-in for services that cannot run here (AzureML's
REST API, the managed-identity token endpoint). Used by the contract tests in both environments."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from tls import Certificate


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


#: One scripted answer: (status, headers, body) or the string "drop" (close without answering).
Reply = tuple[int, dict[str, str], Any] | str


@dataclass
class LoopbackService:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    default: Callable[[Recorded], Reply] | None = None

    def script(self, path_contains: str, *replies: Reply) -> None:
        self.scripts.setdefault(path_contains, []).extend(replies)

    def next_reply(self, recorded: Recorded) -> Reply:
        for key, replies in self.scripts.items():
            if key in recorded.path and replies:
                return replies.pop(0)
        if self.default is not None:
            return self.default(recorded)
        return 500, {}, {"error": {"code": "Unscripted", "message": recorded.path}}

    def to(self, needle: str) -> list[Recorded]:
        return [r for r in self.requests if needle in r.path]


def _handler(service: LoopbackService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            recorded = Recorded(self.command, parts.path, parse_qs(parts.query),
                                {k.lower(): v for k, v in self.headers.items()}, body)
            service.requests.append(recorded)
            reply = service.next_reply(recorded)
            if reply == "drop":
                # The request was read; the connection dies before any answer (an ambiguous failure).
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, headers, payload = reply
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


@contextmanager
def serve(tls: Certificate | None = None) -> Iterator[LoopbackService]:
    """``tls``: answer https with that certificate (tests/tls.py)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    if tls is not None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    service = LoopbackService(url=f"{scheme}://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(service)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConnectionRefusedError(f"test guard: no network beyond loopback (tried {address!r})")
    return _real_connect(self, address)


def forbid_network(monkeypatch: Any) -> None:
    """No connection but to loopback for the rest of the test: an SDK that reaches for a real
    service fails at once instead of hanging or, worse, succeeding."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
