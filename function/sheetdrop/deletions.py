"""Workbooks deleted from a table-mode folder: found by the timer's sweep, each delivered as a run that commits the
folder's tables without it, so a deletion alone makes a new table version (README, "A folder as one table").

Each sweep lists the input container's names and the notes of delivered table-mode workbooks
(:mod:`sheetdrop.table_notes`); a noted workbook no longer listed was deleted. Its noted version is run again (a
re-run of its claim: once per attempt, whoever else sweeps at the same time) with what its run was asked for; the
step finds the blob gone and, the folder being a table, commits the folder's tables without it (``extract.py``).
Then the note goes, unless a delivery rewrote it meanwhile (the workbook uploaded again). Delay: up to one sweep
period (5 minutes in Azure) plus the run. Cost per sweep: ceil(blobs / 5,000) + ceil(notes / 5,000) list requests,
and one run per deleted workbook; nothing at all for a container without table-mode folders.
"""

from __future__ import annotations

import logging

from sheetdrop import table_notes
from sheetdrop.claims import Acquired, ClaimState, ClaimStore
from sheetdrop.settings import Settings
from sheetdrop.submit.backends import get_backend
from sheetdrop.trigger import BlobVersion, Outcome, build_request

log = logging.getLogger("sheetdrop.deletions")

#: A claim in these states has a delivery under way (being submitted, or held for a batch): the next sweep looks.
BUSY = (ClaimState.SUBMITTING, ClaimState.PENDING)


def deliver_deletions(settings: Settings, claims: ClaimStore, invocation_id: str = "sweep") -> list[Outcome]:
    from sheetdrop.storage import blob_service

    notes = list(table_notes.noted(claims.container, settings.input_container))
    if not notes:
        return []
    container = blob_service(settings.storage).get_container_client(settings.input_container)
    present = set(container.list_blob_names())
    outcomes = []
    for found in notes:
        if found.blob in present:
            continue
        try:
            outcomes.append(_deliver(settings, claims, found, f"{invocation_id}-deleted"))
        except Exception as exc:  # one failing deletion must not keep the others waiting
            log.error("delivering the deletion of %s/%s failed (the next sweep retries): %s", found.container,
                      found.blob, exc)
    return outcomes


def _deliver(settings: Settings, claims: ClaimStore, found: table_notes.Noted, invocation_id: str) -> Outcome:
    claim = claims.read(found.container, found.blob, found.etag)
    if claim is None:  # a note without its claim (claims cleared by hand): nothing to run again
        table_notes.forget(claims.container, found)
        return Outcome("skipped", reason="no claim for the deleted workbook's version")
    if claim.state in BUSY:
        return Outcome("duplicate", reason=f"its version's claim is {claim.state}; the next sweep looks again")
    got = claims.rerun(found.container, found.blob, found.etag, claim.run_attempt, invocation_id)
    if not isinstance(got, Acquired):
        return Outcome("duplicate", reason=got.reason)
    asked = table_notes.request_of(claims.container, found)
    request = build_request(BlobVersion(found.container, found.blob, found.etag, None), settings, invocation_id,
                            asked["dataset"], asked["read_options"], got.claim.run_attempt)
    try:
        result = get_backend(settings).submit(request)
    except Exception as exc:
        claims.release(got.claim, f"{exc.__class__.__name__}: {exc}")
        raise
    claims.mark_submitted(got.claim, result.run_id)
    table_notes.forget(claims.container, found)
    log.warning("%s/%s was deleted: run %s commits its folder's tables without it", found.container, found.blob,
                result.run_id)
    return Outcome("submitted", reason="deleted from a table-mode folder", run_id=result.run_id, url=result.url)
