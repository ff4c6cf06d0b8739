"""A real `sheetdrop host --azurite` for the crash tests: its environment, its process, its waits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import REPO
from sheetdrop.storage import blob_service
from sheetdrop_local.azurite import free_port
from sheetdrop_local.settings import LocalSettings, load_local_settings


def host_env(state: Path) -> tuple[dict[str, str], LocalSettings]:
    """The environment of a host with its own state folder and Azurite ports, nothing inherited
    from the test session's settings."""
    env = {**os.environ, "SHEETDROP_STATE_DIR": str(state), "AZURITE_BLOB_PORT": str(free_port()),
           "AZURITE_QUEUE_PORT": str(free_port()), "AZURITE_TABLE_PORT": str(free_port())}
    for name in ("INPUT_STORAGE", "SHEETDROP_BACKEND", "INPUT_CONTAINER", "LOCAL_OUTPUT_CONTAINER",
                 "CLAIMS_CONTAINER"):
        env.pop(name, None)
    return env, load_local_settings(env)


def start_host(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """In its own process group, as a person runs it in a terminal."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sheetdrop_local.cli", "host", "--azurite", "--poll-interval",
                                 "0.2"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop_azurite(settings: LocalSettings) -> None:
    """Azurite outlives a killed host by design; a test ends it itself."""
    pid_file = settings.state_dir / "azurite" / "azurite.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(json.loads(pid_file.read_text())["pid"], signal.SIGTERM)


def reachable(settings: LocalSettings) -> bool:
    try:
        blob_service(settings.storage).get_service_properties()
        return True
    except Exception:
        return False


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
