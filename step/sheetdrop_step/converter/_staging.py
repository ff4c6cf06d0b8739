"""The staging folder a conversion's reader writes into, on local disk, and what is left of one whose
converter was killed: each folder is locked by its converter for as long as it lives (``flock``, which
the kernel releases when the process dies, however), and a folder whose lock is free has no owner:
the next conversion on the machine removes it. (The reader removes it itself when its parent dies
mid-read: ``_reading.reader``; this catches what is killed between the two.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX = "sheetdrop-staging-"
#: A folder being made: locked, then renamed to its PREFIX name (so that no sweep sees it unlocked).
MAKING = "sheetdrop-making-"
LOCK = ".owner"
#: A folder left while being made (its converter killed within that millisecond) goes after this long.
MAKING_STALE_S = 3600


@contextlib.contextmanager
def staging_folder() -> Iterator[Path]:
    """A new staging folder, locked while the block runs, removed after it; stale ones removed first."""
    sweep()
    making = Path(tempfile.mkdtemp(prefix=MAKING))
    lock = os.open(making / LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        folder = making.with_name(PREFIX + making.name.removeprefix(MAKING))
        making.rename(folder)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(lock)
        shutil.rmtree(making, ignore_errors=True)  # (when the rename failed)


def sweep(root: Path | None = None) -> list[Path]:
    """Remove the staging folders under ``root`` (the temp folder) whose converter has died; returns them."""
    removed = []
    root = root or Path(tempfile.gettempdir())
    for folder in root.glob(PREFIX + "*"):
        try:
            lock = os.open(folder / LOCK, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue  # not ours to judge (another user's, or gone)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its converter lives
        else:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(lock)
    for folder in root.glob(MAKING + "*"):
        with contextlib.suppress(OSError):
            if time.time() - folder.stat().st_mtime > MAKING_STALE_S:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed
