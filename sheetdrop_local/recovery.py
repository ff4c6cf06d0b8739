"""What a dev host does before it starts work: finish what a crash left behind.

There is one dev host per state folder (the lock in it), so a host that holds the lock knows that
every earlier host of this folder is dead. It does not wait for timeouts that exist because, in
Azure, a live invocation cannot be told from a dead one:

- claims its predecessors left in ``submitting`` are given back at once (not after
  CLAIM_STALE_SECONDS), and the next delivery takes them over, checking the run store first;
- runs left ``running`` are queued again; the outputs of their cut-short attempts are deleted by
  the runner before the next attempt;
- completed runs whose outputs storage no longer has (Azurite keeps its index in memory and saves
  it every few seconds, so its own crash can lose what it had acknowledged) lose their dataset
  versions and run again, or fail with that reason when their input is gone too.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sheetdrop.claims import ClaimState, ClaimStore
from sheetdrop_local import registry, runstore
from sheetdrop_local.runstore import RunStatus

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

log = logging.getLogger("sheetdrop.host")


@dataclass
class StorageRestarts:
    """Counts storage restarts. A run commits its registrations under ``lock`` and, if storage
    restarted since the run began, first checks that its uploads survived; a restart's check of
    completed runs takes the same lock. Between them no registration can miss both checks."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    count: int = 0


def invocation_prefix(state_dir: Path) -> str:
    """How this state folder's dev hosts start their invocation ids (``<prefix><instance>-…``)."""
    return f"devhost-{hashlib.sha256(str(state_dir).encode('utf-8')).hexdigest()[:8]}-"


def release_predecessors_claims(claims: ClaimStore, prefix: str, instance: str) -> int:
    released = 0
    for claim in claims.list(ClaimState.SUBMITTING):
        holder = claim.invocation_id or ""
        mine = holder.startswith(f"{prefix}{instance}-")
        if holder.startswith(prefix) and not mine and claims.abandon(
                claim, f"the dev host that held it stopped (invocation {holder})"):
            released += 1
    if released:
        log.info("gave back %d claim(s) a stopped dev host held; delivering them again now", released)
    return released


def verify_outputs(conn: sqlite3.Connection, service: BlobServiceClient, output_container: str,
                   input_containers: dict[str, str], since: float) -> list[str]:
    """Completed runs (ended at ``since`` or later) whose output blobs are missing: their dataset
    versions are removed and they run again, or fail when their input version is gone too.
    Returns the run ids that were affected."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    affected = []
    output = service.get_container_client(output_container)
    for run in runstore.completed_since(conn, since):
        # A batch run's dataset versions are its versions' (each registered under the version it converted).
        holders = [run.run_id, *(v.run_id for v in runstore.batch_versions(conn, run.run_id))]
        versions = [v for holder in holders for v in registry.for_run(conn, holder)]
        missing = [v.relative_path for v in versions if not output.get_blob_client(v.relative_path).exists()]
        if not missing:
            continue
        affected.append(run.run_id)
        if run.kind == "batch":
            input_there = True  # each version's step reads it again, and says if it is gone
        else:
            try:
                service.get_blob_client(input_containers[run.datastore_name], run.relative_path).get_blob_properties(
                    etag=run.source_etag, match_condition=MatchConditions.IfNotModified)
                input_there = True
            except (ResourceNotFoundError, ResourceModifiedError):
                input_there = False
        with runstore.transaction(conn):
            for holder in holders:
                registry.unregister_run(conn, holder)
            if input_there:
                runstore.requeue(conn, run.run_id, "its output was lost when storage stopped; running it again")
            else:
                runstore.finish(conn, run.run_id, RunStatus.FAILED, error=(
                    f"its output ({len(missing)} file(s)) was lost when storage stopped, and the input version "
                    "is gone too; upload the file again"), log_path=run.log_path)
        log.warning("run %s: %d output file(s) missing after a storage crash; %s", run.run_id, len(missing),
                    "running it again" if input_there else "failed (input gone too)")
    return affected
