"""Serve the studio with uvicorn: in the foreground (``sheetdrop ui``) or in a thread of the dev host
(``sheetdrop host --ui``, what ``make run`` does)."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sheetdrop_local.azurite import port_open
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("sheetdrop.studio")


class StudioError(RuntimeError):
    pass


def url_for(bind: str, port: int) -> str:
    host = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _server(settings: LocalSettings, bind: str, port: int) -> uvicorn.Server:
    import uvicorn

    from sheetdrop_local.studio.app import create_app

    if port_open(port, "127.0.0.1" if bind in ("0.0.0.0", "::") else bind):
        raise StudioError(f"port {port} is already in use: choose another with --port or SHEETDROP_UI_PORT")
    try:
        loopback = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = bind == "localhost"
    if not loopback:
        # It shows the Azurite development connection in its snippets: fine on this machine only.
        log.warning("the studio listens on %s, not only on this machine; it has no sign-in", bind)
    config = uvicorn.Config(create_app(settings), host=bind, port=port, log_level="warning", access_log=False,
                            lifespan="off")
    return uvicorn.Server(config)


def serve(settings: LocalSettings, bind: str, port: int) -> None:
    """In the foreground until Ctrl-C."""
    server = _server(settings, bind, port)
    print(f"sheetdrop studio: {url_for(bind, port)}  (Ctrl-C stops)", flush=True)
    server.run()


@dataclass
class Studio:
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_in_thread(settings: LocalSettings, bind: str, port: int, timeout: float = 10.0) -> Studio:
    server = _server(settings, bind, port)
    # uvicorn installs signal handlers only in the main thread; here the host keeps its own.
    thread = threading.Thread(target=server.run, name="studio", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise StudioError(f"the studio did not start on {bind}:{port}")
        time.sleep(0.05)
    return Studio(server, thread, url_for(bind, port))
