"""Where the local runner puts a step's input and output: the mounts an emulation (``sheetdrop_local.emulations``)
lays out, and blob names made into paths inside them.

Today's AzureML (the common runtime) mounts a job's data under
``<job root>/cap/data-capability/wd/<name>`` and says so in ``AZUREML_CR_DATA_CAPABILITY_PATH``;
around 2020 it mounted datastores at ``<run>/mounts/<datastore>/<path>`` (docs/azureml.md, "Where
the step writes"). The step must work under both, because it learns its output's datastore path
from the run and never from the mount path; the runner reproduces today's layout by default and
the legacy one when ``LOCAL_MOUNT_LAYOUT=legacy``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, get_args
from urllib.parse import quote

MountLayout = Literal["common-runtime", "legacy"]
MOUNT_LAYOUTS: tuple[MountLayout, ...] = get_args(MountLayout)
MAX_NAME_BYTES = 255


class MountError(ValueError):
    """A blob name that cannot become a path inside its mount."""


@dataclass(frozen=True)
class StepMounts:
    input_file: Path
    output_dir: Path
    #: The environment variables AzureML sets for these mounts.
    env: dict[str, str] = field(default_factory=dict)
    #: What to remove when the run is over.
    roots: tuple[Path, ...] = ()


def safe_join(base: Path, relative_path: str) -> Path:
    """``base/<relative path>`` with a blob name treated as data, never as a path: segments that would
    climb (``..``) or vanish (``.``, empty) are percent-encoded, over-long ones hashed, and the
    result is checked to stay inside ``base``."""
    segments = []
    for segment in PurePosixPath(relative_path).parts:
        if segment in ("..", ".", "/", ""):
            segment = quote(segment, safe="").replace(".", "%2E") or "%2F"
        segment = segment.replace("\\", "%5C")
        if len(segment.encode("utf-8")) > MAX_NAME_BYTES:
            # A blob name segment may be 1,024 characters, a file name 255 bytes: keep it unique
            # and keep its extension (the step recognises workbooks by content, but people read it).
            digest = hashlib.sha256(segment.encode("utf-8")).hexdigest()[:32]
            segment = f"{digest}{PurePosixPath(segment).suffix[:16]}"
        segments.append(segment)
    if not segments:
        raise MountError(f"the input path {relative_path!r} names no file")
    path = base.joinpath(*segments)
    if not path.resolve().is_relative_to(base.resolve()):
        raise MountError(f"the input path {relative_path!r} would leave the run's mount folder")
    return path
