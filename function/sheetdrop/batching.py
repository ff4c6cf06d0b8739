"""Bursts of drops become batch jobs; a trickle stays one run per blob.

A pipeline run costs minutes of a node before it converts anything (a cluster start, an image, a snapshot), so
a month-end burst of hundreds of workbooks should not become hundreds of runs. When the backend can take many
versions in one job (``submit_batch``) and the app is in a burst — at least ``BATCH_THRESHOLD`` versions submitted
on their own in the last minute, or a batch already forming — a claimed version is held (``ClaimState.PENDING``,
with what its run will be asked for) instead of submitted. A batch is submitted as soon as ``BATCH_SIZE`` versions
wait, by the delivery that fills it, and otherwise when its oldest version has waited ``BATCH_WAIT_SECONDS``, by
the next delivery or the app's ``batch_flush`` timer (every 30 seconds). So a version of a burst waits at most
``BATCH_WAIT_SECONDS`` + 30 s before its batch is submitted; a trickle never waits.

Exactly once as everywhere else: a flush moves each pending claim on with a conditional write before it puts the
version in a batch, so two flushes never take the same version; a failed batch submission releases its claims (each
counts a failure, and the sweep delivers them again on their own); a flush that died after submitting leaves its
claims in ``submitting``, taken over later by a delivery that first finds the batch run of the version.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from sheetdrop.claims import INDEX_PREFIX, PENDING_INDEX, Claim, ClaimState, ClaimStore, version_key
from sheetdrop.submit import BatchRequest, SubmitRequest

if TYPE_CHECKING:
    from sheetdrop.settings import Settings
    from sheetdrop.submit import Backend

log = logging.getLogger("sheetdrop.batching")

#: One small blob per version submitted on its own, in a folder per minute: counting them says whether a burst is on.
RECENT = f"{INDEX_PREFIX}recent/"
WINDOW = 60.0


def can_batch(backend: Backend, settings: Settings) -> bool:
    return settings.batch_threshold > 0 and callable(getattr(backend, "submit_batch", None))


def _minute(at: float) -> str:
    return time.strftime("%Y%m%d%H%M", time.gmtime(at))


def in_a_burst(settings: Settings, claims: ClaimStore) -> bool:
    """A batch is forming, or the versions submitted on their own in the last minute reached the threshold."""
    if next(iter(claims.container.list_blob_names(name_starts_with=PENDING_INDEX)), None) is not None:
        return True
    now = claims.clock()
    recent = 0
    for minute in {_minute(now - WINDOW), _minute(now)}:
        recent += sum(1 for _ in claims.container.list_blob_names(name_starts_with=f"{RECENT}{minute}/"))
    return recent >= settings.batch_threshold


def record_single(claims: ClaimStore, container: str, blob: str, etag: str) -> None:
    """Count a version submitted on its own (best effort: a missed count only delays a batch)."""
    try:
        key = version_key(blob, etag).replace("/", "-")
        claims.container.upload_blob(f"{RECENT}{_minute(claims.clock())}/{container}-{key}", b"", overwrite=True)
    except Exception as exc:
        log.warning("could not count %s/%s among recent submissions: %s", container, blob, exc)


def forget_old_minutes(claims: ClaimStore) -> None:
    """The counts of minutes that no longer matter."""
    keep = {_minute(claims.clock() - WINDOW), _minute(claims.clock())}
    for name in list(claims.container.list_blob_names(name_starts_with=RECENT)):
        if name[len(RECENT):].split("/", 1)[0] not in keep:
            with contextlib.suppress(Exception):
                claims.container.delete_blob(name)


def flush(settings: Settings, claims: ClaimStore, backend: Backend, request_for: Callable[[Claim], SubmitRequest], *,
          invocation_id: str, only_when_due: bool = True) -> dict[str, list[Claim]]:
    """Submit the waiting versions in batches: full ones, and (``only_when_due``: only) one whose oldest version has
    waited ``BATCH_WAIT_SECONDS``; ``request_for`` makes a held claim's request. Returns each batch run made, with
    the claims of the versions it holds."""
    waiting = sorted(claims.list(ClaimState.PENDING), key=lambda c: c.updated_at)
    made: dict[str, list[Claim]] = {}
    while waiting:
        due = claims.clock() - waiting[0].updated_at >= settings.batch_wait_seconds
        if only_when_due and len(waiting) < settings.batch_size and not due:
            break
        chunk, waiting = waiting[:settings.batch_size], waiting[settings.batch_size:]
        batch_id = f"batch-{uuid.uuid4().hex[:12]}"
        taken = [claim for claim in chunk if claims.take_for_batch(claim, f"{invocation_id}-{batch_id}")]
        if not taken:
            continue
        try:
            result = backend.submit_batch(BatchRequest(batch_id, tuple(request_for(c) for c in taken)))
        except Exception as exc:
            for claim in taken:  # each counts a failure; the sweep delivers them again, on their own
                claims.release(claim, f"batch {batch_id}: {exc.__class__.__name__}: {exc}")
            log.error("batch %s of %d versions could not be submitted (released; the sweep retries): %s",
                      batch_id, len(taken), exc)
            continue
        for claim in taken:
            claims.mark_submitted(claim, result.run_id)
        log.info("submitted batch %s of %d versions as run %s%s", batch_id, len(taken), result.run_id,
                 f" — {result.url}" if result.url else "")
        made[result.run_id] = taken
    return made
