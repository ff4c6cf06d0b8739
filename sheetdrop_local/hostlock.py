"""One dev host per state folder: an exclusive lock on ``<state>/host.lock``, held for the host's life.

A second host would queue the first one's running runs again (and so run them twice), adopt its
Azurite and stop it on the way out. So ``sheetdrop host`` takes the lock before it starts or adopts
anything, and a second one exits at once, naming the first (its pid and studio address, which the
lock file holds). The kernel releases the lock when its holder dies, however it dies.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class HostRunning(RuntimeError):
    """Another host holds the state folder; the message says which and what to do."""


@dataclass
class HostLock:
    path: Path
    handle: IO[str] | None

    @classmethod
    def take(cls, state_dir: Path, studio_url: str | None = None) -> HostLock:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / "host.lock"
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            studio = f"studio {holder['studio']}" if holder.get("studio") else "no studio"
            raise HostRunning(f"a host is already running for this state folder {state_dir} (pid "
                              f"{holder.get('pid', 'unknown')}, {studio}); stop it first, or set SHEETDROP_STATE_DIR "
                              "to another folder") from None
        lock = cls(path, handle)
        lock.note(studio_url)
        return lock

    def note(self, studio_url: str | None) -> None:
        """Say who holds the lock, for the message a second host prints."""
        assert self.handle is not None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps({"pid": os.getpid(), "studio": studio_url}))
        self.handle.flush()

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file releases the lock
            self.handle = None


def _holder(text: str) -> dict[str, object]:
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if isinstance(found, dict):
        return found
    # A host of an earlier version wrote its pid alone.
    return {"pid": text.strip() or "unknown"}
