"""Start and stop the Azurite storage emulator (installed from npm by ``make``)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sheetdrop_local import REPO

FLAGS = ("--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent")
#: Azurite's published development account. It is not a secret (it is the same on every machine)
#: and it is only ever a local default: the cloud configuration uses identities.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_connection_string(blob_port: int, queue_port: int, host: str = "127.0.0.1") -> str:
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{AZURITE_ACCOUNT};"
    )


class AzuriteError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def azurite_binary() -> str:
    local = REPO / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise AzuriteError("Azurite is not installed: run `make setup` (it runs `npm ci` in the repository)")


def _die_with_parent() -> None:
    """In the child before exec: if whoever started Azurite is killed outright (SIGKILL, a CI
    timeout), Azurite goes too instead of holding its ports forever (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class Azurite:
    location: Path
    blob_port: int = 10000
    queue_port: int = 10001
    table_port: int = 10002
    process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.blob_port, self.queue_port)

    def start(self, timeout: float = 30.0) -> Azurite:
        if port_open(self.blob_port):
            raise AzuriteError(
                f"port {self.blob_port} is already in use: another Azurite is running "
                f"(stop it, or choose other ports with AZURITE_BLOB_PORT / AZURITE_QUEUE_PORT)")
        self.location.mkdir(parents=True, exist_ok=True)
        log = open(self.location / "azurite.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [azurite_binary(), "--location", str(self.location),
             "--blobPort", str(self.blob_port), "--queuePort", str(self.queue_port),
             "--tablePort", str(self.table_port), *FLAGS],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us; we stop Azurite ourselves
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not (port_open(self.blob_port) and port_open(self.queue_port)):
            if self.process.poll() is not None:
                raise AzuriteError(
                    f"Azurite exited with code {self.process.returncode}; see {self.location}/azurite.log")
            if time.monotonic() > deadline:
                self.stop()
                raise AzuriteError(f"Azurite did not listen within {timeout:.0f} s; see {self.location}/azurite.log")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
