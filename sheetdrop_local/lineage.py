"""What the CLI and the local studio show, read in one place: the run list (runs, and the blob
versions that got none: skipped or poisoned), a run with what it made, and where a dataset version
lives. Read-only: nothing here writes to the run store, the registry or storage.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sheetdrop.claims import ClaimState, ClaimStore
from sheetdrop.storage import storage_unreachable
from sheetdrop_contract.contract import SUPERSEDED_TAG
from sheetdrop_local import registry, runstore
from sheetdrop_local.registry import DatasetVersion
from sheetdrop_local.runstore import Run
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

#: Every status a row of the run list can have.
STATUSES = ("queued", "running", "completed", "failed", "superseded", "skipped", "poisoned")
IN_PROGRESS = ("queued", "running")
UNREACHABLE_NOTE = "storage is unreachable, so skipped and poisoned blob versions are not listed"


def quick_service(settings: LocalSettings) -> BlobServiceClient:
    """A storage client for reads a person waits for: no retries and a short connect timeout, so
    that a stopped Azurite is an error within a second, not after 20 s of back-off."""
    from azure.storage.blob import BlobServiceClient

    from sheetdrop.storage import blob_service

    options = {"retry_total": 0, "connection_timeout": 3, "read_timeout": 30}
    if settings.storage.connection_string:
        return BlobServiceClient.from_connection_string(settings.storage.connection_string, **options)
    return blob_service(dataclasses.replace(settings.storage, retry_total=0))


def storage_endpoint(settings: LocalSettings) -> str:
    """The blob endpoint, for messages: never the connection string itself, which carries a key."""
    parts = dict(part.split("=", 1) for part in (settings.storage.connection_string or "").split(";") if "=" in part)
    return parts.get("BlobEndpoint") or settings.storage.describe()


def claims_reader(settings: LocalSettings, service: BlobServiceClient) -> ClaimStore:
    return ClaimStore(service.get_container_client(settings.claims_container),
                      stale_after=settings.claim_stale_seconds, max_failures=settings.claim_max_failures)


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

    @property
    def in_progress(self) -> bool:
        return any(e.status in IN_PROGRESS for e in self.entries)


def activity(conn: sqlite3.Connection, settings: LocalSettings, service: BlobServiceClient, *, limit: int = 50,
             status: str | None = None, dataset: str | None = None) -> Activity:
    """The newest ``limit`` rows, newest first. ``dataset`` keeps the runs that feed it: its workbook's
    dataset name, or one of the versions registered (``sales`` and ``sales_orders`` both find a
    run of ``sales/…``); blob versions without a run feed no dataset."""
    entries: list[Entry] = []
    if status in (None, *runstore.RunStatus):
        for run in _runs(conn, status, limit if dataset is None else None):
            outputs = registry.for_run(conn, run.run_id)
            if dataset is None or dataset == run.dataset_name or dataset in {v.name for v in outputs}:
                entries.append(Entry(run.status, run.source_container, run.source_blob, run.source_etag,
                                     run.submitted_at, reason=run.error, run=run, outputs=outputs,
                                     newer=newer_version(conn, run)))
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


def _runs(conn: sqlite3.Connection, status: str | None, limit: int | None) -> list[Run]:
    sql, params = "SELECT * FROM runs", []
    if status:
        sql, params = sql + " WHERE status = ?", [status]
    sql += " ORDER BY submitted_at DESC"
    if limit is not None:
        sql, params = sql + " LIMIT ?", [*params, limit]
    return [Run.from_row(row) for row in conn.execute(sql, params)]


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


class RunNotFound(LookupError):
    pass


def find_run(conn: sqlite3.Connection, ref: str) -> Run:
    """A run by its id, a unique beginning of it (as the tables show: 8 characters), or ``latest``."""
    ref = ref.strip()
    if ref == "latest":
        row = conn.execute("SELECT * FROM runs ORDER BY submitted_at DESC LIMIT 1").fetchone()
        if row is None:
            raise RunNotFound("no runs yet")
        return Run.from_row(row)
    rows = conn.execute("SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? ESCAPE '\\' ORDER BY submitted_at",
                        (ref, ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")).fetchall()
    exact = [row for row in rows if row["run_id"] == ref]
    if exact or len(rows) == 1:
        return Run.from_row((exact or rows)[0])
    if not rows or not ref:
        raise RunNotFound(f"no run {ref!r} (see `sheetdrop runs`)")
    raise RunNotFound(f"{ref!r} is the beginning of {len(rows)} run ids; give more of it: "
                      + ", ".join(row["run_id"] for row in rows[:5]))


@dataclass(frozen=True)
class Location:
    """Where a registered version's parquet is: the datastore it is registered on, and the storage
    container that plays that datastore in the embedded default."""

    datastore: str
    container: str
    path: str
    #: The blob's URL (no credentials in it).
    url: str

    @property
    def blob_path(self) -> str:
        return f"{self.container}/{self.path}"


def location(settings: LocalSettings, version: DatasetVersion, service: BlobServiceClient) -> Location:
    container = settings.local_container_for(version.datastore)
    url = service.get_blob_client(container, version.relative_path).url
    return Location(version.datastore, container, version.relative_path, url)


def resolve_version(conn: sqlite3.Connection, ref: str) -> DatasetVersion:
    """``NAME``, ``NAME:latest`` or ``NAME:VERSION``; a version that is not a number is a ValueError."""
    name, _, version = ref.partition(":")
    if version in ("", "latest"):
        return registry.get(conn, name)
    if not version.isdigit():
        raise ValueError(f"NAME[:VERSION|:latest] with a version number, not {ref!r}")
    return registry.get(conn, name, int(version))


def step_log(settings: LocalSettings, run: Run, limit: int = 2_000_000) -> str | None:
    """The step's log (``std_log.txt``), its last ``limit`` characters; None before the step started."""
    path = run.log_path or str(settings.state_dir / "runs" / run.run_id / "std_log.txt")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    return text if len(text) <= limit else f"[… {len(text) - limit} characters before]\n{text[-limit:]}"
