"""How a time, a run and a dataset version are written wherever they are shown: the CLI's tables and
the studio's pages write them alike, so that what one shows can be looked up in the other."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sheetdrop_local.registry import DatasetVersion

#: The beginning of a run id the tables show; :func:`.runs.find_run` takes it back.
SHORT_ID = 8


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def short(run_id: str | None) -> str:
    return run_id[:SHORT_ID] if run_id else "-"


def ref(version: DatasetVersion) -> str:
    """``name:version``, as AzureML refers to a dataset version."""
    return f"{version.name}:{version.version}"
