"""Start, adopt and stop the Azurite storage emulator (installed from npm by ``make``).

Azurite keeps its index in memory and saves it every few seconds; it saves on a graceful stop
(SIGTERM). So it must never be stopped as a side effect of the host dying: it runs in its own
session and outlives a crashed host (data intact), the next host adopts it from its pid file, and
only a deliberate stop ends it, waiting until it has saved and exited.
"""

from __future__ import annotations

import json
import os
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
    #: The process id of an Azurite this object runs or adopted.
    pid: int | None = None
    #: Wall time at which it started (or was adopted): what a crash of it may have lost came after.
    started_at: float = 0.0
    adopted: bool = False

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.blob_port, self.queue_port)

    @property
    def pid_file(self) -> Path:
        return self.location / "azurite.pid"

    def _ports(self) -> list[int]:
        return [self.blob_port, self.queue_port, self.table_port]

    def _adoptable(self) -> int | None:
        """The pid of an Azurite a previous host started on this folder and these ports, if it runs."""
        try:
            recorded = json.loads(self.pid_file.read_text())
            cmdline = Path(f"/proc/{recorded['pid']}/cmdline").read_bytes()
        except (OSError, ValueError, KeyError):
            return None
        if recorded.get("ports") != self._ports() or b"azurite" not in cmdline or not port_open(self.blob_port):
            return None
        return int(recorded["pid"])

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        if self.pid is None:
            return False
        try:  # a zombie (state Z) has exited; in a container nobody may reap it
            return Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    def start(self, timeout: float = 30.0) -> Azurite:
        adoptable = self._adoptable()
        if adoptable is not None:
            self.pid, self.adopted, self.started_at = adoptable, True, time.time()
            return self
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
            # Its own session: neither Ctrl-C nor the host's death reaches it; we stop it ourselves.
            start_new_session=True,
        )
        self.pid, self.adopted, self.started_at = self.process.pid, False, time.time()
        self.pid_file.write_text(json.dumps({"pid": self.pid, "ports": self._ports()}))
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

    def stop(self, timeout: float = 30.0) -> None:
        """A graceful stop: SIGTERM, then wait until it has saved and exited."""
        if self.alive() and self.pid is not None:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        self.pid_file.unlink(missing_ok=True)
        self.process, self.pid = None, None
