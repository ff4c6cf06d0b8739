"""``sheetdrop rerun``: convert blob versions again on purpose, as a new attempt of the same version.

A version's claim makes it run once per upload; a workbook rejected before a converter fix, a version poisoned while
storage or AzureML failed, or one held back while its folder's options were invalid would otherwise need uploading
again. A re-run is asked *after* an attempt (the attempt of the run named, or of the claim's state): the claim
starts the next attempt (``ClaimStore.rerun``) only if nothing moved past that attempt yet, so a request carried
out twice — the command run again, a retry after a lost answer — makes one new run. The new run is tagged with its
attempt (``source_attempt``), which is how lost-answer recovery and the run list tell attempts apart.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from sheetdrop.claims import ClaimState
from sheetdrop.trigger import BlobVersion, claim_store, handle_blob
from sheetdrop_local import runstore
from sheetdrop_local.runstore import RunStatus

if TYPE_CHECKING:
    from sheetdrop.claims import ClaimStore
    from sheetdrop_local.settings import LocalSettings

#: What `--status` may choose: a failed run's version, or a version the trigger held back or gave up on.
STATUSES = ("failed", "poisoned", "options_invalid")


@dataclass(frozen=True)
class Target:
    container: str
    blob: str
    etag: str
    #: The attempt the re-run is asked after.
    after: int
    #: What was asked for: the run id, or the claim's state.
    what: str


def for_run(conn: sqlite3.Connection, run_ref: str) -> list[Target]:
    from sheetdrop_local.readmodel.runs import find_run

    run = find_run(conn, run_ref)
    return [Target(run.source_container, run.source_blob, run.source_etag, run.source_attempt, run.run_id)]


def for_status(conn: sqlite3.Connection, claims: ClaimStore, container: str, prefix: str, status: str) -> list[Target]:
    """Versions under ``prefix`` whose latest attempt ended ``status``."""
    if status == "failed":
        latest: dict[tuple[str, str, str], runstore.Run] = {}
        for run in runstore.list_runs(conn, None):  # newest first: the first seen of a version is its latest
            key = (run.source_container, run.source_blob, run.source_etag)
            latest.setdefault(key, run)
        return [Target(*key, run.source_attempt, run.run_id) for key, run in sorted(latest.items())
                if run.status == RunStatus.FAILED and key[0] == container and key[1].startswith(prefix)]
    return sorted((Target(c.container, c.blob, c.etag, c.run_attempt, c.state) for c in claims.list(ClaimState(status))
                   if c.container == container and c.blob.startswith(prefix)), key=lambda t: (t.blob, t.etag))


def rerun(target: Target, settings: LocalSettings, claims: ClaimStore) -> tuple[str, str]:
    """(outcome, one line saying it): resubmitted, already, superseded or failed."""
    from azure.core.exceptions import ResourceNotFoundError

    from sheetdrop.storage import blob_service

    where = f"{target.container}/{target.blob} (etag {target.etag})"
    try:
        props = blob_service(settings.storage).get_blob_client(target.container, target.blob).get_blob_properties()
    except ResourceNotFoundError:
        return "superseded", f"{where}: the blob was deleted; nothing to convert"
    if props.etag != target.etag:
        return "superseded", f"{where}: overwritten since (now etag {props.etag}); its newer version has its own run"
    version = BlobVersion(target.container, target.blob, target.etag, props.size)
    try:
        outcome = handle_blob(version, invocation_id=f"rerun-{uuid.uuid4().hex[:12]}", settings=settings,
                              claims=claims, rerun_after=target.after)
    except Exception as exc:  # its claim is released: the timer's sweep delivers it again
        return "failed", f"{where}: {exc.__class__.__name__}: {exc}"
    if outcome.action == "duplicate":
        return "already", f"{where}: {outcome.reason}"
    if outcome.action in ("submitted", "recovered"):
        return "resubmitted", f"{where}: attempt {target.after + 1} is run {outcome.run_id}"
    return "failed", f"{where}: {outcome.action}: {outcome.reason}"


def command(settings: LocalSettings, run_ref: str | None, prefix: str, status: str | None, dry_run: bool,
            out: TextIO) -> int:
    from sheetdrop_local import backend, db
    from sheetdrop_local.readmodel.locations import check_reachable

    check_reachable(settings)  # nothing answering is said within seconds, not after the SDK's retries
    backend.install(settings)
    conn = db.connect(settings.state_dir)
    claims = claim_store(settings)
    targets = for_run(conn, run_ref) if run_ref else \
        for_status(conn, claims, settings.input_container, prefix, status or "failed")
    if not targets:
        print(f"nothing to re-run: no {status or 'failed'} version under {settings.input_container}/{prefix}",
              file=out)
        return 1
    if dry_run:
        for target in targets:
            print(f"would re-run {target.container}/{target.blob} (etag {target.etag}) after attempt {target.after} "
                  f"({target.what})", file=out)
        return 0
    counts: dict[str, int] = {}
    for target in targets:
        outcome, line = rerun(target, settings, claims)
        counts[outcome] = counts.get(outcome, 0) + 1
        print(f"{outcome}: {line}", file=out)
    print("rerun: " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items())), file=out)
    return 1 if counts.get("failed") else 0
