"""Find versions whose blob-created event never arrived, and deliver them: part of the timer's sweep.

Event Grid retries a delivery for up to 24 hours and then drops it (or dead-letters it); a subscription
paused or misconfigured loses events too. So every sweep lists the input container (:mod:`sheetdrop.backlog`)
and delivers each qualifying version that has no claim although it was written more than
``RECONCILE_AFTER_SECONDS`` ago, at most ``RECONCILE_MAX_DELIVERIES`` a run. Only versions written after the
app first swept count: what was already in the container is the backfill's to convert (``sheetdrop backfill``),
which says what it will cost first. The first sweep records that moment in the claims container.

Cost per run: ceil(blobs / 5,000) + ceil(claimed versions of the container / 5,000) list requests, plus one
delivery per version found (README, "Reliability").
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable

from sheetdrop.backlog import Listing, unclaimed
from sheetdrop.claims import INDEX_PREFIX, ClaimStore
from sheetdrop.settings import Settings
from sheetdrop.trigger import Outcome, handle_blob

log = logging.getLogger("sheetdrop.reconcile")

WATERMARK = f"{INDEX_PREFIX}reconcile/"


def watching_since(claims: ClaimStore, container: str, clock: Callable[[], float] = time.time) -> float:
    """When the app started watching ``container``: recorded by the first caller, read by every later one."""
    from azure.core.exceptions import ResourceExistsError

    blob = claims.container.get_blob_client(f"{WATERMARK}{container}.json")
    now = clock()
    try:
        blob.upload_blob(json.dumps({"since": now}).encode(), overwrite=False)
        return now
    except ResourceExistsError:
        return float(json.loads(blob.download_blob().readall())["since"])


def reconcile(settings: Settings, claims: ClaimStore, invocation_id: str = "sweep") -> list[Outcome]:
    from sheetdrop.storage import blob_service

    container = blob_service(settings.storage).get_container_client(settings.input_container)
    since = watching_since(claims, settings.input_container, claims.clock)
    until = claims.clock() - settings.reconcile_after_seconds
    listing = Listing()
    outcomes: list[Outcome] = []
    for found in unclaimed(container, claims, since=since, until=until, listing=listing):
        if len(outcomes) >= settings.reconcile_max_deliveries:
            log.info("reconciliation: %d more versions without an event wait for the next sweep",
                     listing.unclaimed - len(outcomes))
            break
        version = found.version
        log.warning("delivering %s/%s (etag %s): written %.0f s ago and never delivered (its event was lost)",
                    version.container, version.name, version.etag, claims.clock() - found.modified)
        try:
            outcomes.append(handle_blob(version, invocation_id=f"{invocation_id}-reconcile-{uuid.uuid4().hex[:8]}",
                                        settings=settings, claims=claims))
        except Exception as exc:  # one failing version must not keep the others waiting
            log.error("delivering %s/%s failed (its claim is released; the next sweep retries): %s",
                      version.container, version.name, exc)
    return outcomes
