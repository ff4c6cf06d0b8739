"""The workspace storage account's blob endpoint, ``https://<account>.blob.core.windows.net``, answered on loopback
through an HTTPS proxy, for what azure-ai-ml reads from a datastore by itself.

azure-ai-ml builds that host name from the datastore's account and the cloud's storage suffix
(``_artifacts/_artifact_utilities.py`` ``get_datastore_info``), which no setting points elsewhere, and its storage
client goes through requests, which honours ``HTTPS_PROXY``. So this is the proxy: it accepts ``CONNECT`` for
``*.blob.core.windows.net`` only, ends TLS itself with a certificate for that name (trusted through
REQUESTS_CA_BUNDLE) and answers two Blob service operations from a folder, as the service does (learn:
rest/api/storageservices, "List Blobs" and "Get Blob"): listing a container by prefix and reading a blob (whole
or a range). Anything else is a 501, so a test sees it if the SDK starts asking for more.

Or, for a whole job that writes there too (the step's table commit as the compute's identity, `sheetdrop smoke`'s
table-version: tests/aml2/test_smoke_v2.py), :func:`forwarding_proxy`: the same ``CONNECT`` and TLS, and every request
sent on, unchanged but for its address, to an Azurite account over https that takes bearer tokens (tests/aml2/
conftest.py ``input_account``): ``/<container>/<blob>`` becomes ``/devstoreaccount1/<container>/<blob>`` (Azurite's
path-style address of an account), so every Blob operation the SDKs send is answered by Azurite, not simulated here.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import http.server
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

SUFFIX = ".blob.core.windows.net"


@dataclass
class BlobAccount:
    """``containers``: each container's folder; ``seen``: each request as (method, path and query, bearer?)."""

    containers: dict[str, Path]
    seen: list[tuple[str, str, bool]] = field(default_factory=list)


class _Blobs(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    account: BlobAccount

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.account.seen.append(("GET", self.path, self.headers.get("Authorization", "").startswith("Bearer ")))
        container, _, name = unquote(url.path).lstrip("/").partition("/")
        folder = self.account.containers.get(container)
        query = parse_qs(url.query)
        if folder is None:
            return self._reply(404, b"", {"x-ms-error-code": "ContainerNotFound"})
        if not name and query.get("comp") == ["list"]:
            return self._list(container, folder, query.get("prefix", [""])[0])
        path = folder / name
        if not name or not path.is_file():
            return self._reply(404, b"", {"x-ms-error-code": "BlobNotFound"})
        data = path.read_bytes()
        headers = {"ETag": _etag(data), "Last-Modified": _modified(path), "x-ms-blob-type": "BlockBlob",
                   "Content-Type": "application/octet-stream"}
        wanted = self.headers.get("x-ms-range") or self.headers.get("Range")
        if wanted and data:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            end = min(int(last) if last else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {first}-{end}/{len(data)}"
            return self._reply(206, data[int(first):end + 1], headers)
        return self._reply(200, data, headers)

    def do_PUT(self) -> None:
        self.account.seen.append(("PUT", self.path, self.headers.get("Authorization", "").startswith("Bearer ")))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(501, b"", {"x-ms-error-code": "NotImplementedHere"})

    def _list(self, container: str, folder: Path, prefix: str) -> None:
        blobs = sorted(p for p in folder.rglob("*") if p.is_file()
                       and p.relative_to(folder).as_posix().startswith(prefix))
        items = "".join(
            f"<Blob><Name>{escape(p.relative_to(folder).as_posix())}</Name><Properties>"
            f"<Last-Modified>{_modified(p)}</Last-Modified><Etag>{_etag(p.read_bytes())}</Etag>"
            f"<Content-Length>{p.stat().st_size}</Content-Length><Content-Type>application/octet-stream</Content-Type>"
            "<BlobType>BlockBlob</BlobType></Properties><Metadata /></Blob>" for p in blobs)
        body = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://{self.host}/" '
                f'ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix><Blobs>{items}</Blobs>'
                "<NextMarker /></EnumerationResults>")
        self._reply(200, body.encode(), {"Content-Type": "application/xml"})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body)), "x-ms-version": "2025-01-05",
                            "x-ms-request-id": hashlib.md5(self.path.encode()).hexdigest()}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    host = ""


def _etag(data: bytes) -> str:
    return f'"0x{hashlib.sha256(data).hexdigest()[:16].upper()}"'


def _modified(path: Path) -> str:
    return email.utils.formatdate(path.stat().st_mtime, usegmt=True)


class _Forward(http.server.BaseHTTPRequestHandler):
    """Each request sent on to ``upstream`` (``https://host:port/<account>``), its answer returned as it came."""

    protocol_version = "HTTP/1.1"
    upstream = ""
    trust: ssl.SSLContext
    seen: list[tuple[str, str, bool]]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        target = urlsplit(self.upstream)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.command, self.path, self.headers.get("Authorization", "").startswith("Bearer ")))
        # Hop-by-hop headers stay here; Host names Azurite, which reads the account from the path.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "proxy-connection",
                                                                              "keep-alive", "content-length")}
        connection = http.client.HTTPSConnection(target.hostname or "", target.port, context=self.trust, timeout=60)
        try:
            connection.request(self.command, target.path.rstrip("/") + self.path, body=body,
                               headers={**headers, "Content-Length": str(len(body))})
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        # A HEAD answer says the blob's length without sending it.
        self.send_header("Content-Length", answer.getheader("Content-Length", "0") if self.command == "HEAD"
                         else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, account: BlobAccount, tls: ssl.SSLContext, handler: type | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.account, self.tls = account, tls
        #: The handler each tunnel's requests go to: answered from folders, or forwarded (:func:`forwarding_proxy`).
        self.handler = handler


class _Tunnel(socketserver.BaseRequestHandler):
    server: _Proxy

    def handle(self) -> None:
        stream = self.request.makefile("rb")
        request_line = stream.readline().decode("latin-1").split()
        while stream.readline() not in (b"\r\n", b"\n", b""):
            pass
        if len(request_line) < 2 or request_line[0] != "CONNECT" or \
                not request_line[1].rsplit(":", 1)[0].endswith(SUFFIX):
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with self.server.tls.wrap_socket(self.request, server_side=True) as tls:
            handler = self.server.handler or type("Blobs", (_Blobs,), {"account": self.server.account,
                                                                       "host": request_line[1].rsplit(":", 1)[0]})
            handler(tls, self.client_address, self.server)


@contextmanager
def forwarding_proxy(upstream: str, cert: Path, key: Path, trust: Path) -> Iterator[tuple[str, BlobAccount]]:
    """Every ``*.blob.core.windows.net`` request sent on to ``upstream`` (an Azurite account's blob endpoint, whose
    certificate ``trust`` holds); yields the proxy's URL (for HTTPS_PROXY) and what it saw (``seen``)."""
    account = BlobAccount({})
    handler = type("Forward", (_Forward,), {"upstream": upstream, "seen": account.seen,
                                            "trust": ssl.create_default_context(cafile=str(trust))})
    with blob_proxy(account, cert, key, handler) as url:
        yield url, account


@contextmanager
def blob_proxy(account: BlobAccount, cert: Path, key: Path, handler: type | None = None) -> Iterator[str]:
    """Serve ``account`` (or hand each tunnel's requests to ``handler``); yields the proxy's URL (for HTTPS_PROXY)."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = _Proxy(account, tls, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

