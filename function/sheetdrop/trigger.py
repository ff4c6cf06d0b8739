"""What the Function does with a new blob: qualify it, claim it, name its dataset, submit its run.

``function_app.py`` only unpacks the binding and calls :func:`handle_blob`.
"""

from __future__ import annotations

import functools
import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sheetdrop import batching, table_notes
from sheetdrop import options as folder_options
from sheetdrop.claims import Acquired, Claim, ClaimState, ClaimStore
from sheetdrop.naming import DatasetNames, dataset_source, skip_reason
from sheetdrop.settings import Settings, get_settings
from sheetdrop.storage import account_url
from sheetdrop.submit import Backend, SubmitRequest
from sheetdrop.submit.backends import get_backend
from sheetdrop.telemetry import log_outcome
from sheetdrop_contract import contract, read_options

log = logging.getLogger("sheetdrop.trigger")


@dataclass(frozen=True)
class BlobVersion:
    container: str
    name: str
    etag: str
    size: int | None
    metadata: dict[str, str] = field(default_factory=dict)


#: skipped: not a workbook; duplicate: claimed by another delivery; recovered: a claim taken over
#: whose run already existed; poisoned: given up on this version; pending: held for a batch job; options_invalid:
#: not submitted, because the folder's read options are invalid (every mistake is the reason).
Action = Literal["skipped", "duplicate", "submitted", "recovered", "poisoned", "pending", "options_invalid"]


@dataclass(frozen=True)
class Outcome:
    action: Action
    reason: str | None = None
    run_id: str | None = None
    url: str | None = None


@functools.cache
def claim_store(settings: Settings) -> ClaimStore:
    from sheetdrop.storage import blob_service, ensure_container

    container = ensure_container(blob_service(settings.storage), settings.claims_container)
    return ClaimStore(container, stale_after=settings.claim_stale_seconds, max_failures=settings.claim_max_failures)


@functools.cache
def dataset_names(settings: Settings) -> DatasetNames:
    return DatasetNames(claim_store(settings).container)


def build_request(blob: BlobVersion, settings: Settings, invocation_id: str | None, dataset: str,
                  read_options: str = "{}", attempt: int = 1) -> SubmitRequest:
    tags = contract.source_tags(blob.container, blob.name, blob.etag, attempt)
    if invocation_id:
        tags[contract.INVOCATION_TAG] = invocation_id
    return SubmitRequest(
        experiment_name=settings.experiment_name,
        datastore_name=settings.input_datastore,
        relative_path=blob.name,
        dataset_name=dataset,
        description=f"Extract {blob.container}/{blob.name} into dataset {dataset}",
        source_container=blob.container,
        source_blob=blob.name,
        source_etag=blob.etag,
        tags=tags,
        read_options=read_options,
        input_account=account_url(settings.storage),
        attempt=attempt,
    )


def held_request(claim: Claim, settings: Settings) -> SubmitRequest:
    """The request of a version held for a batch, from what its delivery decided (its claim's ``pending``)."""
    held = claim.pending or {}
    return build_request(BlobVersion(claim.container, claim.blob, claim.etag, None), settings,
                         held.get("invocation_id") or None, held["dataset"], held.get("read_options", "{}"),
                         claim.run_attempt)


def _record_skipped(blob: BlobVersion, reason: str, settings: Settings | None, claims: ClaimStore | None) -> None:
    """Best effort, so that a person can see why their upload made no run; skipping itself must
    never fail an invocation. A folder's options file is checked as it lands: the record says
    whether it is valid, and names every mistake."""
    try:
        settings = settings or get_settings()
        store = claims or claim_store(settings)
        errors = None
        if posixpath.basename(blob.name) == read_options.OPTIONS_FILE:
            from sheetdrop.storage import blob_service

            container = blob_service(settings.storage).get_container_client(blob.container)
            errors = folder_options.mistakes(container, blob.name, blob.etag)
            if errors:
                log.warning("%s/%s is invalid, so workbooks in its folder will not be converted until it is fixed: "
                            "%s", blob.container, blob.name, "; ".join(errors))
        store.record_skipped(blob.container, blob.name, blob.etag, reason, errors)
    except Exception as exc:
        log.warning("could not record that %s/%s was skipped: %s: %s", blob.container, blob.name,
                    exc.__class__.__name__, exc)


def logs_outcome(handler: Callable[..., Outcome]) -> Callable[..., Outcome]:
    """One structured outcome record (:mod:`sheetdrop.telemetry`) per delivery, whatever happens."""

    @functools.wraps(handler)
    def logged(blob: BlobVersion, **kwargs: Any) -> Outcome:
        where = {"container": blob.container, "blob": blob.name, "etag": blob.etag, "started": time.monotonic(),
                 "invocation_id": kwargs.get("invocation_id")}
        try:
            outcome = handler(blob, **kwargs)
        except Exception as exc:
            log_outcome(log, "failed", reason=f"{exc.__class__.__name__}: {exc}", **where)
            raise
        log_outcome(log, outcome.action, run_id=outcome.run_id, run_url=outcome.url, reason=outcome.reason, **where)
        return outcome

    return logged


@logs_outcome
def handle_blob(
    blob: BlobVersion,
    *,
    invocation_id: str | None = None,
    settings: Settings | None = None,
    backend: Backend | None = None,
    claims: ClaimStore | None = None,
    rerun_after: int | None = None,
    batch: bool = False,
) -> Outcome:
    """Deliver one blob version: skip it, or claim it and submit its run. ``rerun_after``: a re-run requested after
    that attempt of the version (``sheetdrop rerun``): the claim starts the next attempt, once per request.
    ``batch``: hold it for a batch job whenever the backend takes batches (a backfill); otherwise only in a burst
    (:mod:`sheetdrop.batching`)."""
    reason = skip_reason(blob.name, blob.size)
    if reason:
        log.info("skipped %s/%s: %s", blob.container, blob.name, reason)
        _record_skipped(blob, reason, settings, claims)
        return Outcome("skipped", reason=reason)
    settings = settings or get_settings()
    claims = claims or claim_store(settings)
    got = claims.acquire(blob.container, blob.name, blob.etag, invocation_id) if rerun_after is None else \
        claims.rerun(blob.container, blob.name, blob.etag, rerun_after, invocation_id)
    if not isinstance(got, Acquired):
        log.info("already claimed %s/%s (etag %s): %s", blob.container, blob.name, blob.etag, got.reason)
        return Outcome("duplicate", reason=got.reason)

    backend = backend or get_backend(settings)
    try:
        from sheetdrop.storage import blob_service

        container = blob_service(settings.storage).get_container_client(blob.container)
        try:
            options, parameter = folder_options.for_blob(container, blob.name)
        except read_options.OptionsError as exc:
            # Nothing is submitted: the run would fail before converting. The version keeps its claim in
            # this state, and a later delivery of it (a re-run) reads the options again.
            claims.options_invalid(got.claim, str(exc))
            log.warning("not converting %s/%s: its folder's read options are invalid: %s", blob.container, blob.name,
                        exc)
            return Outcome("options_invalid", reason=f"options invalid: {exc}")
        # A dataset name the folder's options ask for is taken as is: two folders may mean to share it.
        dataset = contract.slug(options.dataset, "workbook") if options.dataset else \
            dataset_names(settings).name_for(dataset_source(blob.name))
        if options.table:  # so that the timer can tell when it is deleted (sheetdrop.deletions)
            table_notes.note(claims.container, blob.container, blob.name, blob.etag, dataset, parameter)
        attempt = got.claim.run_attempt
        request = build_request(blob, settings, invocation_id, dataset, parameter, attempt)
        if got.check_existing:
            # The invocation that held the claim before may have died after its submission reached
            # the service, or lost the answer: a run tagged with this version means nothing is left to do.
            existing = backend.find_runs(blob.container, blob.name, blob.etag, attempt)
            if existing:
                claims.mark_submitted(got.claim, existing[0])
                log.info("recovered %s/%s: run %s already existed", blob.container, blob.name, existing[0])
                return Outcome("recovered", run_id=existing[0])
        batches = batching.can_batch(backend, settings)
        if batches and (batch or batching.in_a_burst(settings, claims)):
            claims.hold(got.claim, {"dataset": dataset, "read_options": parameter,
                                    "invocation_id": invocation_id or ""})
            log.info("holding %s/%s (etag %s) for a batch job", blob.container, blob.name, blob.etag)
            try:  # a batch this version fills goes now; otherwise the next delivery or the timer sends it
                made = batching.flush(settings, claims, backend, functools.partial(held_request, settings=settings),
                                      invocation_id=invocation_id or "trigger")
            except Exception as exc:  # the version is held; the timer flushes it
                log.warning("could not submit the waiting batch now (the timer will): %s", exc)
                made = {}
            # Its batch run, when this delivery sent the batch it is in.
            run_id = next((run for run, taken in made.items()
                           if any((c.blob, c.etag) == (blob.name, blob.etag) for c in taken)), None)
            return Outcome("pending", run_id=run_id)
        result = backend.submit(request)
        if batches:
            batching.record_single(claims, blob.container, blob.name, blob.etag)
    except Exception as exc:
        claim = claims.release(got.claim, f"{exc.__class__.__name__}: {exc}")
        if claim.state == ClaimState.POISONED:
            # Returning normally stops the host's retries: the input stays untouched, and a new
            # upload (a new etag) is new work.
            log.error("poisoned %s/%s (etag %s) after %d failed attempts: %s",
                      blob.container, blob.name, blob.etag, claim.failures, claim.last_error)
            return Outcome("poisoned", reason=claim.last_error)
        raise
    if not claims.mark_submitted(got.claim, result.run_id):
        log.warning("run %s submitted but its claim changed meanwhile", result.run_id)
    if result.existing:
        log.info("%s/%s (etag %s) already had run %s; nothing submitted", blob.container, blob.name, blob.etag,
                 result.run_id)
        return Outcome("recovered", run_id=result.run_id, url=result.url)
    log.info(
        "submitted %s/%s (etag %s) as run %s for dataset %s%s",
        blob.container, blob.name, blob.etag, result.run_id, request.dataset_name,
        f" — {result.url}" if result.url else "",
    )
    return Outcome("submitted", run_id=result.run_id, url=result.url)
