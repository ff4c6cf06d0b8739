"""What keeps the studio safe on a shared machine, around every request (a plain ASGI middleware):

- It answers only to the names it is reached by on purpose: ``localhost`` and IP addresses, plus the
  host names ``SHEETDROP_UI_HOSTS`` lists (for a studio bound to a non-loopback address). A page on
  another site whose name an attacker points at 127.0.0.1 (DNS rebinding) reaches the studio with
  its own name in ``Host``, and is refused, so it cannot read run logs or data previews; an address
  cannot be rebound, so an IP literal is no such risk.
- Every answer carries a strict Content-Security-Policy (scripts, styles and requests from the
  studio itself only; no frames, no plugins, no inline code), ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``.
- An error never shows a traceback, on the page or in the terminal: Starlette's error page is
  answered (the app's own 500 page) and the error is logged as one line.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("sheetdrop.studio")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
#: The setting that lists the other host names the studio answers to.
HOSTS_SETTING = "SHEETDROP_UI_HOSTS"


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8765`` → ``::1``), lowercase."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def allowed(name: str, extra: tuple[str, ...]) -> bool:
    if name == "localhost" or name in extra:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def refusal(name: str, extra: tuple[str, ...]) -> str:
    also = f" and {', '.join(extra)}" if extra else ""
    return (f"This studio answers to localhost and IP addresses{also}, not to {name!r}: a page of another site "
            "may be using that name to reach it. To open it under that name on purpose, list the name in "
            f"{HOSTS_SETTING} (comma-separated) and start it again.\n")


class Guard:
    def __init__(self, app: ASGIApp, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = tuple(h.strip().lower() for h in hosts if h.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        headers = dict(scope.get("headers") or [])
        name = host_name(headers.get(b"host", b"").decode("latin-1"))
        if not allowed(name, self.hosts):
            log.warning("refused a request for host %r (DNS rebinding?); %s lists the names it may use",
                        name[:100], HOSTS_SETTING)
            await send_with_headers({"type": "http.response.start", "status": 400,
                                     "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send_with_headers({"type": "http.response.body", "body": refusal(name, self.hosts).encode()})
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Starlette has answered with the error page already when it re-raises; a line, no traceback.
            log.error("studio: %s %s failed: %s: %s", scope.get("method"), str(scope.get("path"))[:200],
                      exc.__class__.__name__, " ".join(str(exc).split())[:300])
            if not started:
                await send_with_headers({"type": "http.response.start", "status": 500,
                                         "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await send_with_headers({"type": "http.response.body", "body": b"The studio could not answer.\n"})
