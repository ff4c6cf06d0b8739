"""The blob versions that got no run, copied from the claims container's indexes (where the trigger
notes them, in Azure and locally alike) into the local ``unrun`` table, so that the run list is one
query (``runlist.py``).

One listing of the indexes, with metadata, finds what is new: a skipped record carries itself in its
metadata (``ClaimStore.record_skipped``), so thousands are read without a request each; a record an
earlier version wrote is read once; a poisoned version's claim once (poisoned is final); an
``options invalid`` claim is looked at again each time (a re-run may have taken it on). The listing
is repeated at most every ``SYNC_COST_FACTOR`` times its own duration, so a container with thousands
of skipped versions costs a page view little; the notes are then that many seconds old at most.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from typing import TYPE_CHECKING

from sheetdrop.claims import (
    INDEX_PREFIX,
    OPTIONS_INVALID_INDEX,
    POISONED_INDEX,
    SKIPPED_INDEX,
    Claim,
    ClaimState,
    ClaimStore,
    SkippedBlob,
)
from sheetdrop_local import db, runlist
from sheetdrop_local.readmodel.locations import claims_reader
from sheetdrop_local.runlist import Unrun
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import BlobProperties, BlobServiceClient

SYNC_COST_FACTOR = 10
#: What a person does about a version whose folder's options were invalid when it arrived. (With a
#: re-run command, the version is converted again without being uploaded again: say so here.)
OPTIONS_INVALID_HINT = "fix the folder's sheetdrop.json, then `sheetdrop rerun --status options_invalid`"
NEXT_SYNC = "unrun_next_sync"


def refresh(conn: sqlite3.Connection, settings: LocalSettings, service: BlobServiceClient,
            force: bool = False) -> None:
    """Bring the ``unrun`` table up to date with storage, unless it was a moment ago (``force``: now)."""
    from azure.core.exceptions import ResourceNotFoundError

    due = db.get_state(conn, NEXT_SYNC)
    if not force and due is not None and float(due) > time.time():
        return
    started = time.monotonic()
    claims = claims_reader(settings, service)
    have = runlist.known(conn)
    try:
        items = list(claims.container.list_blobs(name_starts_with=INDEX_PREFIX, include=["metadata"]))
    except ResourceNotFoundError:  # no claims container yet: nothing was ever delivered
        items = []
    changed: list[Unrun] = []
    listed: set[str] = set()
    for item in items:
        found: Unrun | bool | None
        if item.name.startswith(SKIPPED_INDEX):
            found = have.get(item.name) == item.etag or _skipped(claims, item)
        elif item.name.startswith(POISONED_INDEX):
            found = item.name in have or _claimed(claims, item.name, POISONED_INDEX, None)
        elif item.name.startswith(OPTIONS_INVALID_INDEX):
            found = _claimed(claims, item.name, OPTIONS_INVALID_INDEX, have.get(item.name))
        else:
            continue
        if found:
            listed.add(item.name)
        if isinstance(found, Unrun):
            changed.append(found)
    runlist.store(conn, changed, set(have) - listed)
    db.set_state(conn, NEXT_SYNC, f"{time.time() + SYNC_COST_FACTOR * (time.monotonic() - started):.3f}")


def _skipped(claims: ClaimStore, item: BlobProperties) -> Unrun | None:
    from azure.core.exceptions import ResourceNotFoundError

    record = (item.metadata or {}).get("record")
    try:
        text = urllib.parse.unquote(record) if record else claims.container.download_blob(item.name).readall()
        skipped = SkippedBlob(**json.loads(text))
    except ResourceNotFoundError:
        return None
    except (ValueError, TypeError):  # not a record this code wrote: leave it out, never stop
        return None
    if skipped.options_errors is None:
        status, reason = "skipped", skipped.reason
    else:
        status, reason = "options", "invalid: " + "; ".join(skipped.options_errors) if skipped.options_errors else None
    return Unrun(item.name, item.etag, status, skipped.container, skipped.blob, skipped.etag, skipped.at, reason,
                 skipped.options_errors)


def _claimed(claims: ClaimStore, name: str, prefix: str, seen_etag: str | None) -> Unrun | bool | None:
    """The claim an index entry names, if it is still in that index's state (True: as last read)."""
    from azure.core.exceptions import ResourceNotFoundError

    client = claims.container.get_blob_client(name.removeprefix(prefix))
    try:
        if seen_etag is not None and client.get_blob_properties().etag == seen_etag:
            return True
        downloader = client.download_blob()
        claim = Claim(**json.loads(downloader.readall()))
    except ResourceNotFoundError:
        return None
    except (ValueError, TypeError):
        return None
    if claim.state == ClaimState.POISONED:
        return Unrun(name, downloader.properties.etag, "poisoned", claim.container, claim.blob, claim.etag,
                     claim.updated_at, f"{claim.failures} failed submissions: {claim.last_error}; upload the file "
                     "again to retry")
    if claim.state == ClaimState.OPTIONS_INVALID:
        return Unrun(name, downloader.properties.etag, "options invalid", claim.container, claim.blob, claim.etag,
                     claim.updated_at, f"{claim.last_error}; {OPTIONS_INVALID_HINT}")
    return None
