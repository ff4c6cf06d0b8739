"""Versions in the input container that no claim covers: what a backfill converts, and what the
reconciliation finds when an event never came.

Two listings, names and properties only, 5,000 items a page: the input container (under a prefix) and the
claims of that container. A version qualifies as the trigger's rule says (``naming.skip_reason``, on the
listing's own size); each one found is then delivered to the trigger, which claims it as it claims an
event's, so a backfill racing live events, another backfill or the reconciliation converts nothing twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sheetdrop.claims import ClaimState, ClaimStore, version_key
from sheetdrop.naming import skip_reason
from sheetdrop.trigger import BlobVersion

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


@dataclass(frozen=True)
class Found:
    version: BlobVersion
    #: When storage last wrote the blob (seconds since the epoch).
    modified: float
    #: None: no claim; else a claim that has not reached a run (released after a failure, or in `submitting`).
    claim: ClaimState | None = None


@dataclass
class Listing:
    """What one pass over a container saw, for progress and ``--dry-run``."""

    listed: int = 0
    not_workbooks: int = 0
    out_of_window: int = 0
    claimed: int = 0
    unfinished: int = 0
    unclaimed: int = 0
    unclaimed_bytes: int = 0


def as_header(etag: str) -> str:
    """An etag as the blob's ETag header gives it (quoted), which is how the trigger sees it, claims it and tags
    runs with it; a listing gives it bare (List Blobs' <Etag> element)."""
    return etag if etag.startswith('"') else f'"{etag}"'


#: Claims that have not led to a run yet: a backfill looks at them again (the trigger decides what to do).
UNFINISHED = (ClaimState.SUBMITTING, ClaimState.RELEASED)


def unclaimed(container: ContainerClient, claims: ClaimStore, *, prefix: str = "", since: float | None = None,
              until: float | None = None, listing: Listing | None = None, unfinished: bool = False) -> Iterator[Found]:
    """Qualifying versions under ``prefix`` without a claim, last written in [since, until), oldest first; with
    ``unfinished``, also those whose claim has not led to a run yet (see :data:`UNFINISHED`)."""
    listing = listing if listing is not None else Listing()
    taken = claims.claimed(container.container_name)
    found = []
    for item in container.list_blobs(name_starts_with=prefix or None):
        listing.listed += 1
        if skip_reason(item.name, item.size):
            listing.not_workbooks += 1
            continue
        modified = item.last_modified.timestamp()
        # Last-Modified has whole seconds: a blob written in the second `since` falls in belongs to the window.
        if (since is not None and modified < math.floor(since)) or (until is not None and modified >= until):
            listing.out_of_window += 1
            continue
        state = taken.get(version_key(item.name, item.etag))
        if state is not None and not (unfinished and state in UNFINISHED):
            listing.claimed += 1
            continue
        if state is None:
            listing.unclaimed += 1
            listing.unclaimed_bytes += item.size or 0
        else:
            listing.unfinished += 1
        found.append(Found(BlobVersion(container.container_name, item.name, as_header(item.etag), item.size),
                           modified, state))
    yield from sorted(found, key=lambda f: (f.modified, f.version.name))
