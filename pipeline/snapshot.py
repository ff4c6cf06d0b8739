"""The step's snapshot: the one folder AzureML is given as the step's source (v1 ``source_directory``, v2
component ``code:``) and the local runner runs.

It is ``step/`` (the entry script ``extract.py``, the package ``sheetdrop_step``, ``requirements.txt``,
``.amlignore``) plus the shared package ``sheetdrop_contract``, whose one copy in git lives in the Function's
folder because that folder is deployed as it is. Assembling is a copy, so publish and the local runner
cannot disagree about what the step is. Standard library only: the local runner imports this.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEP_DIR = REPO / "step"
#: (folder in the checkout, where it goes in the snapshot)
PARTS = ((STEP_DIR, "."), (REPO / "function" / "sheetdrop_contract", "sheetdrop_contract"))
#: Made by running the code, never part of it (and .amlignore keeps them out of an upload anyway).
_NOT_SOURCE = ("__pycache__", ".pytest_cache", ".ruff_cache")


def read_requirements(path: Path = STEP_DIR / "requirements.txt") -> list[str]:
    """Requirement lines of a pip requirements file, without comments and blank lines (the step's
    environment in v1 and v2 is built from these)."""
    lines = (line.split(" #", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def files() -> Iterator[tuple[Path, str]]:
    """Each source file with its path inside the snapshot, in a stable order."""
    for folder, target in PARTS:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not any(part in _NOT_SOURCE for part in relative.parts) and path.suffix != ".pyc":
                yield path, (Path(target) / relative).as_posix()


def digest() -> str:
    """What the snapshot is made of (names and bytes): a new digest means a new step."""
    sha = hashlib.sha256()
    for path, name in files():
        sha.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()[:16]


def assemble(dest: Path) -> Path:
    """Copy the snapshot into ``dest`` (which must not exist yet)."""
    dest.mkdir(parents=True)
    for path, name in files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dest


def built(cache: Path) -> Path:
    """The snapshot of the current sources under ``cache/<digest>``, assembled once: concurrent callers
    each assemble into a folder of their own and the first rename wins."""
    dest = cache / digest()
    if not dest.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".assembling-", dir=cache))
        assemble(staging / "snapshot")
        try:
            os.rename(staging / "snapshot", dest)
        except OSError:
            if not dest.is_dir():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest
