"""Deliver again what nobody else will: blob versions whose claim was abandoned, and (:mod:`sheetdrop.reconcile`)
versions whose event never came.

A worker that dies after claiming leaves its claim in 'submitting', and the host's own
retry of that event arrives while the claim still looks alive, so nobody would ever
submit the version; a submission that failed in a delivery nobody retries (this sweep's
own, say) leaves a 'released' claim. A timer function calls :func:`sweep` every few
minutes; for each such claim whose blob still has that etag it runs the trigger logic
again, which takes the claim over and first checks for an existing run. Failures count
toward poisoning as any other delivery's do.
"""

from __future__ import annotations

import logging
import uuid

from sheetdrop.deletions import deliver_deletions
from sheetdrop.reconcile import reconcile
from sheetdrop.settings import Settings, get_settings
from sheetdrop.trigger import BlobVersion, Outcome, claim_store, handle_blob

log = logging.getLogger("sheetdrop.sweeper")


def sweep(settings: Settings | None = None, invocation_id: str = "sweep") -> list[Outcome]:
    from azure.core.exceptions import ResourceNotFoundError

    from sheetdrop.storage import blob_service

    settings = settings or get_settings()
    service = blob_service(settings.storage)
    outcomes = []
    claims = claim_store(settings)
    for claim in claims.abandoned():
        try:
            props = service.get_blob_client(claim.container, claim.blob).get_blob_properties()
        except ResourceNotFoundError:
            log.info("abandoned claim for %s/%s: the blob is gone, nothing to deliver", claim.container, claim.blob)
            claims.supersede(claim, "the blob was deleted before this version was submitted")
            continue
        if props.etag != claim.etag:
            # Overwritten since: the new version has its own event and claim.
            claims.supersede(claim, f"the blob was overwritten (now etag {props.etag}) before this version ran")
            continue
        log.warning("delivering %s/%s (etag %s) again: its claim was abandoned", claim.container, claim.blob,
                    claim.etag)
        try:
            outcomes.append(handle_blob(
                BlobVersion(claim.container, claim.blob, props.etag, props.size, dict(props.metadata or {})),
                invocation_id=f"{invocation_id}-sweep-{uuid.uuid4().hex[:8]}", settings=settings))
        except Exception as exc:  # one failing version must not keep the others waiting
            log.error("re-delivering %s/%s failed (its claim is released; the next sweep or event retries): %s",
                      claim.container, claim.blob, exc)
    return outcomes + reconcile(settings, claims, invocation_id) + deliver_deletions(settings, claims, invocation_id)


def flush_batches(settings: Settings | None = None, invocation_id: str = "batch-flush") -> list[str]:
    """The ``batch_flush`` timer: submit each batch whose oldest version waited BATCH_WAIT_SECONDS
    (:mod:`sheetdrop.batching`), and forget counts of minutes that no longer matter."""
    import functools

    from sheetdrop import batching
    from sheetdrop.submit.backends import get_backend
    from sheetdrop.trigger import held_request

    settings = settings or get_settings()
    claims = claim_store(settings)
    backend = get_backend(settings)
    if not batching.can_batch(backend, settings):
        return []
    batching.forget_old_minutes(claims)
    return list(batching.flush(settings, claims, backend, functools.partial(held_request, settings=settings),
                               invocation_id=invocation_id))
