"""The run list (runs, and the blob versions that got none: skipped, an options file, poisoned, options
invalid), filtered and paged in one query (``runlist.py``); a run by its id; a run's step log."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sheetdrop.claims import ClaimState, ClaimStore
from sheetdrop.storage import storage_unreachable
from sheetdrop_contract.contract import SUPERSEDED_TAG
from sheetdrop_local import registry, runlist, runstore
from sheetdrop_local.readmodel import unrun
from sheetdrop_local.registry import DatasetVersion
from sheetdrop_local.runlist import Filters
from sheetdrop_local.runstore import Run, RunStatus
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

#: Every status a row of the run list can have: a run's, or a blob version's that got none.
WITHOUT_RUN = ("skipped", "options", "poisoned", "options invalid")
STATUSES = (*(status.value for status in RunStatus), *WITHOUT_RUN)
IN_PROGRESS = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
UNREACHABLE_NOTE = ("storage is unreachable, so blob versions without a run (skipped, poisoned, options) "
                    "are as last seen")
#: The most rows one page may hold.
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Entry:
    """One row of the run list: a run, or a blob version that got no run."""

    status: str
    container: str
    blob: str
    etag: str
    #: When it was submitted (a run) or decided (skipped, poisoned, options).
    at: float
    reason: str | None = None
    run: Run | None = None
    #: The dataset versions the run registered.
    outputs: list[DatasetVersion] = field(default_factory=list)
    #: A superseded run: the newer version's etag and its run (None until it has one).
    newer: Newer | None = None

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
    #: Rows matching the filters in all, and where this page starts among them.
    total: int = 0
    offset: int = 0

    @property
    def in_progress(self) -> bool:
        return any(e.status in IN_PROGRESS for e in self.entries)


def parse_time(text: str, *, end: bool = False) -> float:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]`` in UTC, as a Unix time; a day alone means its start,
    or with ``end`` the start of the next day (so ``until 2026-10-01`` includes that day)."""
    value = datetime.fromisoformat(text.strip())
    day_only = len(text.strip()) == 10
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return (value + timedelta(days=1) if end and day_only else value).timestamp()


def activity(conn: sqlite3.Connection, settings: LocalSettings, service: BlobServiceClient, *, limit: int = 50,
             status: str | None = None, dataset: str | None = None, blob: str | None = None,
             since: float | None = None, until: float | None = None, offset: int = 0,
             fresh: bool = True) -> Activity:
    """The run list's rows ``offset`` to ``offset + limit``, newest first. ``dataset``: part of the name
    of a dataset the run feeds (its workbook's, ``sales``, or a sheet's, ``sales_orders``); blob
    versions without a run feed none. ``blob``: part of ``<container>/<blob>``; both any letter case.
    ``fresh``: read storage's notes of the versions without a run now, rather than when due."""
    note = None
    try:
        unrun.refresh(conn, settings, service, force=fresh)
    except Exception as exc:
        if not storage_unreachable(exc):
            raise
        note = UNREACHABLE_NOTE
    rows, total = runlist.page(conn, Filters(status, dataset, blob, since, until), limit, offset)
    outputs = registry.for_runs(conn, [row.run.run_id for row in rows if row.run])
    entries = [Entry(row.status, row.container, row.blob, row.etag, row.at,
                     reason=_options_state(service, row) if row.options_errors == [] else row.reason, run=row.run,
                     outputs=outputs.get(row.run.run_id, []) if row.run else [],
                     newer=newer_version(conn, row.run) if row.run else None) for row in rows]
    return Activity(entries, note, total, offset)


def _options_state(service: BlobServiceClient, row: runlist.Row) -> str:
    """A valid options file version: in force while it is the blob's current version."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        current = service.get_blob_client(row.container, row.blob).get_blob_properties().etag
    except ResourceNotFoundError:
        return "valid; deleted since"
    except Exception as exc:
        if storage_unreachable(exc):
            return "valid"
        raise
    return "in force" if current == row.etag else "valid; replaced by a newer version"


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


@dataclass(frozen=True)
class Newer:
    """What replaced a superseded run's blob version: its etag, and the run that converts it."""

    etag: str
    run_id: str | None


def newer_version(conn: sqlite3.Connection, run: Run) -> Newer | None:
    """For a superseded run, the version that replaced its own (the step recorded its etag) and that version's
    run; None for any other run."""
    etag = run.metrics.get(SUPERSEDED_TAG) if run.status == runstore.RunStatus.SUPERSEDED else None
    if not etag:
        return None
    found = runstore.find_by_source(conn, run.source_container, run.source_blob, str(etag))
    return Newer(str(etag), found[0] if found else None)


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


#: No run id is longer (a uuid is 36 characters; AzureML's run ids are under 64).
MAX_RUN_REF = 64


class RunNotFound(LookupError):
    pass


def find_run(conn: sqlite3.Connection, ref: str) -> Run:
    """A run by its id, a unique beginning of it (as the tables show: ``labels.short``), or ``latest``."""
    ref = ref.strip()
    if len(ref) > MAX_RUN_REF:  # longer than any run id: no query (SQLite refuses very long patterns)
        raise RunNotFound(f"no run {ref[:40] + '…'!r} (see `sheetdrop runs`)")
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
