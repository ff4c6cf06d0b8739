"""The run list (runs, and the blob versions that got none: skipped or poisoned), a run by its id,
and a run's step log."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sheetdrop.claims import ClaimState, ClaimStore
from sheetdrop.storage import storage_unreachable
from sheetdrop_local import registry, runstore
from sheetdrop_local.readmodel.locations import claims_reader
from sheetdrop_local.registry import DatasetVersion
from sheetdrop_local.runstore import Run, RunStatus
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

#: Every status a row of the run list can have.
STATUSES = (*(status.value for status in RunStatus), "skipped", "poisoned")
IN_PROGRESS = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
UNREACHABLE_NOTE = "storage is unreachable, so skipped and poisoned blob versions are not listed"


@dataclass(frozen=True)
class Entry:
    """One row of the run list: a run, or a blob version that got no run (skipped, poisoned)."""

    status: str
    container: str
    blob: str
    etag: str
    #: When it was submitted (a run) or decided (skipped, poisoned).
    at: float
    reason: str | None = None
    run: Run | None = None
    #: The dataset versions the run registered.
    outputs: list[DatasetVersion] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        return self.run.run_id if self.run else None

    @property
    def seconds(self) -> float | None:
        return self.run.seconds if self.run else None

    def metric(self, name: str) -> object:
        return self.run.metrics.get(name) if self.run else None


@dataclass(frozen=True)
class Activity:
    entries: list[Entry]
    #: Said once above the list when part of it could not be read.
    note: str | None = None

    @property
    def in_progress(self) -> bool:
        return any(e.status in IN_PROGRESS for e in self.entries)


def activity(conn: sqlite3.Connection, settings: LocalSettings, service: BlobServiceClient, *, limit: int = 50,
             status: str | None = None, dataset: str | None = None) -> Activity:
    """The newest ``limit`` rows, newest first. ``dataset`` keeps the runs that feed it: its workbook's
    dataset name, or one of the versions registered (``sales`` and ``sales_orders`` both find a
    run of ``sales/…``); blob versions without a run feed no dataset."""
    entries: list[Entry] = []
    if status in (None, *RunStatus):
        for run in runstore.list_runs(conn, limit if dataset is None else None, status=status):
            outputs = registry.for_run(conn, run.run_id)
            if dataset is None or dataset == run.dataset_name or dataset in {v.name for v in outputs}:
                entries.append(Entry(run.status, run.source_container, run.source_blob, run.source_etag,
                                     run.submitted_at, reason=run.error, run=run, outputs=outputs))
    note = None
    if dataset is None and status in (None, "skipped", "poisoned"):
        try:
            entries += _without_run(settings, service, status, limit)
        except Exception as exc:
            if not storage_unreachable(exc):
                raise
            note = UNREACHABLE_NOTE
    entries.sort(key=lambda e: e.at, reverse=True)
    return Activity(entries[:limit], note)


def _without_run(settings: LocalSettings, service: BlobServiceClient, status: str | None, limit: int) -> list[Entry]:
    from azure.core.exceptions import ResourceNotFoundError

    claims = claims_reader(settings, service)
    entries = []
    try:
        if status in (None, "poisoned"):
            entries += [Entry("poisoned", c.container, c.blob, c.etag, c.updated_at,
                              reason=f"{c.failures} failed submissions: {c.last_error}; upload the file again to retry")
                        for c in claims.list(ClaimState.POISONED)]
        if status in (None, "skipped"):
            entries += [Entry("skipped", s.container, s.blob, s.etag, s.at, reason=s.reason)
                        for s in claims.skipped(limit)]
    except ResourceNotFoundError:  # no claims container yet: nothing was ever delivered
        pass
    return entries


def skipped_reason(claims: ClaimStore, container: str, blob: str, etag: str) -> str | None:
    """Why the trigger skipped this blob version, if it did (the trigger's skipped index)."""
    import json

    from azure.core.exceptions import ResourceNotFoundError

    from sheetdrop.claims import SKIPPED_INDEX, claim_blob_name

    try:
        data = claims.container.download_blob(SKIPPED_INDEX + claim_blob_name(container, blob, etag)).readall()
    except ResourceNotFoundError:
        return None
    return str(json.loads(data).get("reason") or "skipped")


def no_run_reason(claims: ClaimStore, container: str, blob: str, etag: str) -> str | None:
    """Why this blob version has no run and will get none by itself, if so: skipped, poisoned, or
    waiting for its folder's read options to be fixed."""
    skipped = skipped_reason(claims, container, blob, etag)
    if skipped:
        return f"skipped: {skipped}"
    claim = claims.read(container, blob, etag)
    if claim is not None and claim.state == ClaimState.POISONED:
        return f"poisoned: {claim.last_error}"
    if claim is not None and claim.state == ClaimState.OPTIONS_INVALID:
        return f"options invalid: {claim.last_error}"
    return None


class RunNotFound(LookupError):
    pass


def find_run(conn: sqlite3.Connection, ref: str) -> Run:
    """A run by its id, a unique beginning of it (as the tables show: ``labels.short``), or ``latest``."""
    ref = ref.strip()
    if ref == "latest":
        newest = runstore.list_runs(conn, 1)
        if not newest:
            raise RunNotFound("no runs yet")
        return newest[0]
    runs = runstore.with_id_prefix(conn, ref)
    exact = [run for run in runs if run.run_id == ref]
    if exact or len(runs) == 1:
        return (exact or runs)[0]
    if not runs or not ref:
        raise RunNotFound(f"no run {ref!r} (see `sheetdrop runs`)")
    raise RunNotFound(f"{ref!r} is the beginning of {len(runs)} run ids; give more of it: "
                      + ", ".join(run.run_id for run in runs[:5]))


def step_log(settings: LocalSettings, run: Run, limit: int = 2_000_000) -> str | None:
    """The step's log (``std_log.txt``), its last ``limit`` characters; None before the step started."""
    path = run.log_path or str(settings.state_dir / "runs" / run.run_id / "std_log.txt")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    return text if len(text) <= limit else f"[… {len(text) - limit} characters before]\n{text[-limit:]}"


def dataset_names(conn: sqlite3.Connection) -> list[str]:
    """Every dataset name a run list can be filtered by: registered ones, and the names runs were
    submitted for (a workbook whose runs all failed registered nothing)."""
    return sorted({v.name for v in registry.list_versions(conn)} | runstore.dataset_names(conn))
