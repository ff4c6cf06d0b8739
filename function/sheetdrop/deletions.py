"""Workbooks deleted from a table-mode folder: found by the timer's sweep, each delivered as a run that commits the
folder's tables without it, so a deletion alone makes a new table version (README, "A folder as one table").

Each sweep lists the input container's names and the notes of delivered table-mode workbooks
(:mod:`sheetdrop.table_notes`); a noted workbook no longer listed was deleted. Per dataset (a folder's tables) with
deleted workbooks, one of their noted versions is run again (a re-run of its claim: once per attempt, whoever else
sweeps at the same time) with what its run was asked for; the step finds the blob gone and, the folder being a
table, commits the folder's tables without every workbook gone from it (``extract.py``, ``tables.py``: it lists the
folder). Then those notes go, unless a delivery rewrote one meanwhile (the workbook uploaded again). Delay: up to
one sweep period (5 minutes in Azure) plus the run. Cost per sweep: ceil(blobs / 5,000) + ceil(notes / 5,000) list
requests, and one run per folder with deletions (a folder of 100,000 workbooks deleted whole is one run); nothing
at all for a container without table-mode folders. A deletion run that fails is not run again by the sweep: the
rows leave with the folder's next commit (any workbook converted into it), or `sheetdrop rerun` of that version.
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
    by_dataset: dict[str, list[table_notes.Noted]] = {}
    for found in notes:
        if found.blob not in present:
            by_dataset.setdefault(found.dataset, []).append(found)
    outcomes = []
    for dataset, gone in sorted(by_dataset.items()):
        for found in gone:  # the first whose claim can be run again: its run commits every deletion of the folder
            try:
                outcome = _deliver(settings, claims, found, f"{invocation_id}-deleted")
            except Exception as exc:  # one failing folder must not keep the others waiting
                log.error("delivering the deletion of %s/%s failed (the next sweep retries): %s", found.container,
                          found.blob, exc)
                break
            outcomes.append(outcome)
            if outcome.action == "submitted":
                for other in gone:
                    table_notes.forget(claims.container, other)
                log.warning("%d workbooks deleted from %s's folder: run %s commits its tables without them",
                            len(gone), dataset or "?", outcome.run_id)
                break
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
    return Outcome("submitted", reason="deleted from a table-mode folder", run_id=result.run_id, url=result.url)
