"""Tests that need the AzureML environment (.venv-aml): azureml-core and azureml-pipeline.

Nothing here reaches Azure. A guard refuses every socket connection that is not to
loopback, so an SDK call that would go to the service fails the test instead.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

try:
    _has_azureml = importlib.util.find_spec("azureml.pipeline.core") is not None
except ModuleNotFoundError:  # no azureml package at all
    _has_azureml = False
if not _has_azureml:
    # Run from the Function's venv: these tests belong to the other environment.
    collect_ignore_glob = ["test_*.py"]



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/aml/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.aml)


# -- no network but loopback ---------------------------------------------------------------------

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


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


# -- a scripted loopback HTTP service -------------------------------------------------------------

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

        do_GET = do_POST = _handle

    return Handler


@pytest.fixture
def loopback() -> Iterator[LoopbackService]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    service = LoopbackService(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(service)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


# -- an offline workspace -------------------------------------------------------------------------

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-sheetdrop"
WORKSPACE = "mlw-sheetdrop"


@pytest.fixture
def offline_workspace() -> Any:
    """A real azureml Workspace object that never talks to the service.

    The smallest stand-ins the SDK needs: an authentication that refuses to hand out
    tokens (any service call fails the test) and a service context whose discovery
    answers a closed loopback port instead of asking Azure.
    """
    from azureml._restclient.service_context import ServiceContext, _ServiceKeys
    from azureml.core import Workspace
    from azureml.core.authentication import AbstractAuthentication

    class NoTokens(AbstractAuthentication):
        def _refuse(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("offline test: the SDK asked for a token, i.e. tried to call the service")

        _get_arm_token = _get_graph_token = _get_azureml_client_token = _get_all_subscription_ids = _refuse

    class OfflineServiceContext(ServiceContext):
        def _fetch_endpoints(self) -> dict[str, str]:
            return dict.fromkeys(_ServiceKeys.get_discovery_keys(), "http://127.0.0.1:9")

    # cloud= spares the SDK fetching the cloud list from management.azure.com.
    auth = NoTokens(cloud="AzureCloud")
    workspace = Workspace(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, auth=auth, _location="westeurope",
                          _disable_service_check=True, _workspace_id="55555555-6666-7777-8888-999999999999")
    workspace._service_context = OfflineServiceContext(
        SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, workspace._workspace_id, None, auth)
    return workspace
