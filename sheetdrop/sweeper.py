"""Deliver again what an invocation abandoned: blob versions whose claim is stuck in 'submitting'.

A worker that dies after claiming leaves its claim behind, and the host's own retry
of that event arrives while the claim still looks alive, so nobody else would ever
submit the version. A timer function calls :func:`sweep` every few minutes; for each
claim past ``CLAIM_STALE_SECONDS`` whose blob still has that etag it runs the
trigger logic again, which takes the claim over and first checks for an existing run.
"""

from __future__ import annotations

import logging
import uuid

from sheetdrop.settings import Settings, get_settings
from sheetdrop.trigger import BlobVersion, Outcome, claim_store, handle_blob

log = logging.getLogger("sheetdrop.sweeper")


def sweep(settings: Settings | None = None) -> list[Outcome]:
    from azure.core.exceptions import ResourceNotFoundError

    from sheetdrop.storage import blob_service

    settings = settings or get_settings()
    service = blob_service(settings.storage)
    outcomes = []
    for claim in claim_store(settings).stale():
        try:
            props = service.get_blob_client(claim.container, claim.blob).get_blob_properties()
        except ResourceNotFoundError:
            log.info("abandoned claim for %s/%s: the blob is gone, nothing to deliver", claim.container, claim.blob)
            continue
        if props.etag != claim.etag:
            continue  # overwritten since: the new version has its own event and claim
        log.warning("delivering %s/%s (etag %s) again: its claim was abandoned", claim.container, claim.blob,
                    claim.etag)
        try:
            outcomes.append(handle_blob(
                BlobVersion(claim.container, claim.blob, props.etag, props.size, dict(props.metadata or {})),
                invocation_id=f"sweep-{uuid.uuid4()}", settings=settings))
        except Exception as exc:  # one failing version must not keep the others waiting
            log.error("re-delivering %s/%s failed (its claim is released; the next sweep or event retries): %s",
                      claim.container, claim.blob, exc)
    return outcomes
