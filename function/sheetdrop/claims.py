"""One claim per blob version, in storage: exactly one run per uploaded file version.

Event Grid delivers at least once and the Functions host retries, so the same
``(container, blob, etag)`` can reach the trigger many times, at once or much
later. Before submitting, an invocation creates the version's claim blob with
``If-None-Match: *``; only the creator submits. Every later change of state
(``submitting`` → ``submitted`` | ``released`` | ``poisoned``) is a conditional
write on the claim's own etag, so two invocations can never both win a step.

A claim left in ``submitting`` longer than ``stale_after`` (its invocation
died) may be taken over by one later delivery, which must first ask the backend
whether a run for this version already exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, ContainerClient

log = logging.getLogger("sheetdrop.claims")



class ClaimState(StrEnum):
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    #: A submission failed; the next delivery (the host's retry, or the sweep) may try again.
    RELEASED = "released"
    #: Failed ``max_failures`` times: given up until the file is uploaded again.
    POISONED = "poisoned"
    #: The blob was deleted or overwritten before its version was submitted: nothing left to do.
    SUPERSEDED = "superseded"
    #: Waiting to be submitted with others in one batch job (a burst of drops; ``sheetdrop.batching``).
    PENDING = "pending"
    #: Not submitted: the folder's read options were invalid when it arrived (``last_error`` names every
    #: mistake). A later delivery of the version (a re-run) reads the options again.
    OPTIONS_INVALID = "options_invalid"



@dataclass
class Claim:
    container: str
    blob: str
    etag: str
    state: ClaimState
    invocation_id: str | None = None
    run_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    attempts: int = 0
    failures: int = 0
    last_error: str | None = None
    #: Which attempt of the version the claim is about now: 1, then one more per re-run.
    run_attempt: int = 1
    #: The attempts re-runs were requested after: a request is carried out once, however often it comes.
    rerun_after: list[int] = field(default_factory=list)
    #: While PENDING: what its run will be asked for (dataset, read_options, invocation_id), as delivered.
    pending: dict[str, str] | None = None
    #: The claim blob's own etag, for the next conditional write; not stored in the body.
    claim_etag: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        self.state = ClaimState(self.state)  # a body read back has the state as plain text

    def body(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("claim_etag")
        return data


@dataclass(frozen=True)
class Acquired:
    claim: Claim
    #: True when somebody held this claim before (a stale one taken over, or one released after a
    #: failed submission whose answer may have been lost): a run may already exist for this version.
    check_existing: bool = False


@dataclass(frozen=True)
class Declined:
    reason: str
    claim: Claim | None = None


def version_key(blob: str, etag: str) -> str:
    """A blob version as a bounded, path-safe key: the name is hashed, never used as a path."""
    return f"{hashlib.sha256(blob.encode('utf-8')).hexdigest()}/{etag.strip(chr(34))}"


def claim_blob_name(container: str, blob: str, etag: str) -> str:
    return f"{container}/{version_key(blob, etag)}.json"


#: Indexes next to the claims. The underscore keeps them apart from claim names, which start with a
#: container name (container names start with a letter or digit).
INDEX_PREFIX = "_index/"
#: Poisoned claims are listed here as well, so that finding them does not read every claim.
POISONED_INDEX = f"{INDEX_PREFIX}poisoned/"
#: Pending claims likewise; their entries go when the claim leaves PENDING (the batch that takes it removes them).
PENDING_INDEX = f"{INDEX_PREFIX}pending/"
#: Blob versions the trigger did not take (not a workbook), with the reason: no claim, no run, but
#: a person looking for their upload should find it (``sheetdrop runs``, the local studio).
SKIPPED_INDEX = f"{INDEX_PREFIX}skipped/"
#: Claims marked ``options_invalid`` are listed here as well (a later delivery may take the claim on).
OPTIONS_INVALID_INDEX = f"{INDEX_PREFIX}options-invalid/"


@dataclass(frozen=True)
class SkippedBlob:
    container: str
    blob: str
    etag: str
    reason: str
    at: float
    #: For a folder's options file: every mistake in it (empty: valid); None for anything else.
    options_errors: list[str] | None = None


#: How long a released claim waits for the host's own retries before the sweep re-delivers it.
RELEASED_RETRY_AFTER = 300.0
#: States whose claims are also listed in an index, so that finding them does not read every claim.
INDEXED = {ClaimState.POISONED: POISONED_INDEX, ClaimState.PENDING: PENDING_INDEX,
           ClaimState.OPTIONS_INVALID: OPTIONS_INVALID_INDEX}


@dataclass
class ClaimStore:
    container: ContainerClient
    #: Settings.claim_stale_seconds and .claim_max_failures: no defaults here, so there is one of each.
    stale_after: float
    max_failures: int
    #: Wall-clock seconds; claims are compared across processes and machines, so not monotonic.
    clock: Callable[[], float] = time.time

    def _client(self, container: str, blob: str, etag: str) -> BlobClient:
        return self.container.get_blob_client(claim_blob_name(container, blob, etag))

    def read(self, container: str, blob: str, etag: str) -> Claim | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._client(container, blob, etag).download_blob()
        except ResourceNotFoundError:
            return None
        claim = Claim(**json.loads(downloader.readall()))
        claim.claim_etag = downloader.properties.etag
        return claim

    def _write(self, claim: Claim, *, create: bool = False) -> bool:
        """Write the claim if nobody changed it since we read it; False if somebody did."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        client = self._client(claim.container, claim.blob, claim.etag)
        data = json.dumps(claim.body(), sort_keys=True).encode("utf-8")
        metadata = {"state": claim.state, "updated_at": f"{claim.updated_at:.3f}"}
        try:
            if create:
                result = client.upload_blob(data, metadata=metadata, overwrite=False)
            else:
                result = client.upload_blob(data, metadata=metadata, overwrite=True, etag=claim.claim_etag,
                                            match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError):
            # The storage SDK retries a request whose answer was lost (a storage blip): its first
            # attempt may have written exactly this, and the retry then fails its own condition.
            current = self.read(claim.container, claim.blob, claim.etag)
            if current is None or not _same(current, claim):
                return False
            claim.claim_etag = current.claim_etag
        else:
            claim.claim_etag = result["etag"]
        if claim.state in INDEXED:
            self.container.upload_blob(INDEXED[claim.state] + client.blob_name, b"", overwrite=True)
        return True

    def acquire(self, container: str, blob: str, etag: str, invocation_id: str | None) -> Acquired | Declined:
        now = self.clock()
        claim = Claim(container=container, blob=blob, etag=etag, state=ClaimState.SUBMITTING,
                      invocation_id=invocation_id, created_at=now, updated_at=now, attempts=1)
        if self._write(claim, create=True):
            return Acquired(claim)
        # Somebody claimed this version before: decide from what they left.
        current = self.read(container, blob, etag)
        if current is None:  # released by deletion is not something we do; treat as a race and decline
            return Declined("claim vanished while being read; another delivery is handling it")
        if current.state == ClaimState.SUBMITTED:
            return Declined(f"already submitted as run {current.run_id}", current)
        if current.state == ClaimState.POISONED:
            return Declined(f"poisoned after {current.failures} failed attempts: {current.last_error}; "
                            "upload the file again to retry", current)
        if current.state == ClaimState.PENDING and now - current.updated_at < self.stale_after:
            return Declined(f"waiting for its batch since {now - current.updated_at:.0f} s ago", current)
        takeover = current.state in (ClaimState.SUBMITTING, ClaimState.PENDING)
        if takeover and now - current.updated_at < self.stale_after:
            return Declined(f"being submitted by invocation {current.invocation_id} "
                            f"({now - current.updated_at:.0f} s ago)", current)
        current.state, current.invocation_id, current.updated_at = ClaimState.SUBMITTING, invocation_id, now
        current.attempts += 1
        if not self._write(current):
            return Declined("another delivery took this claim over first", current)
        if takeover:
            log.warning("took over a claim for %s/%s (etag %s) left in 'submitting' by a stopped invocation",
                        container, blob, etag)
        return Acquired(current, check_existing=True)

    def rerun(self, container: str, blob: str, etag: str, after: int, invocation_id: str | None) -> Acquired | Declined:
        """Start the next attempt of a version whose attempt ``after`` ended (failed, poisoned, options invalid, or
        done and wanted again): once per request, so a request delivered twice makes one new attempt."""
        current = self.read(container, blob, etag)
        if current is None:
            return Declined("no claim: this version was never delivered, so there is nothing to re-run "
                            "(`sheetdrop backfill` converts it)")
        if after in current.rerun_after or current.run_attempt > after:
            return Declined(f"already re-run: attempt {current.run_attempt} is its latest", current)
        if current.state == ClaimState.SUBMITTING:
            return Declined(f"attempt {current.run_attempt} is being submitted right now", current)
        now = self.clock()
        current.state, current.invocation_id, current.updated_at = ClaimState.SUBMITTING, invocation_id, now
        current.run_attempt, current.rerun_after = after + 1, [*current.rerun_after, after]
        current.run_id, current.failures, current.last_error = None, 0, None
        current.attempts += 1
        if not self._write(current):
            return Declined("the claim changed while it was being re-run; run the re-run again", current)
        return Acquired(current)

    def hold(self, claim: Claim, request: dict[str, str]) -> bool:
        """Keep a claimed version for a batch (PENDING), with what its run will be asked for."""
        claim.state, claim.pending, claim.updated_at = ClaimState.PENDING, request, self.clock()
        return self._write(claim)

    def take_for_batch(self, claim: Claim, invocation_id: str) -> bool:
        """Move a pending claim on to SUBMITTING for the batch being made; False if another flush took it."""
        from azure.core.exceptions import ResourceNotFoundError

        claim.state, claim.invocation_id, claim.updated_at = ClaimState.SUBMITTING, invocation_id, self.clock()
        claim.attempts += 1
        if not self._write(claim):
            return False
        with contextlib.suppress(ResourceNotFoundError):  # another flush's write of the same claim removed it
            self.container.delete_blob(PENDING_INDEX + claim_blob_name(claim.container, claim.blob, claim.etag))
        return True

    def mark_submitted(self, claim: Claim, run_id: str) -> bool:
        claim.state, claim.run_id, claim.updated_at, claim.last_error = ClaimState.SUBMITTED, run_id, self.clock(), None
        return self._write(claim)

    def release(self, claim: Claim, error: str) -> Claim:
        """Give the claim back after a failed submission; poison it after ``max_failures``.
        Returns the claim as stored, so a caller never acts on a state that was not written."""
        claim.failures += 1
        claim.last_error = error[:500]
        claim.updated_at = self.clock()
        claim.state = ClaimState.POISONED if claim.failures >= self.max_failures else ClaimState.RELEASED
        if self._write(claim):
            return claim
        log.warning("could not release the claim for %s/%s: it changed meanwhile", claim.container, claim.blob)
        return self.read(claim.container, claim.blob, claim.etag) or claim

    def list(self, state: ClaimState | None = None) -> Iterator[Claim]:
        """Claims, optionally of one state (from their metadata, without reading every body; the
        poisoned ones from their index)."""
        from azure.core.exceptions import ResourceNotFoundError

        if state in INDEXED:
            names = [name.removeprefix(INDEXED[state])
                     for name in self.container.list_blob_names(name_starts_with=INDEXED[state])]
        else:
            names = [item.name for item in self.container.list_blobs(include=["metadata"])
                     if not item.name.startswith(INDEX_PREFIX)
                     and (state is None or (item.metadata or {}).get("state") == state)]
        for name in names:
            try:
                downloader = self.container.get_blob_client(name).download_blob()
                claim = Claim(**json.loads(downloader.readall()))
            except ResourceNotFoundError:
                continue
            except (ValueError, TypeError) as exc:  # not a claim this code wrote: skip, never stop
                log.warning("skipping unreadable claim blob %s: %s", name, exc)
                continue
            claim.claim_etag = downloader.properties.etag
            if state is None or claim.state == state:  # an index entry may outlive its claim's state
                yield claim

    def claimed(self, container: str) -> dict[str, ClaimState]:
        """Every claimed version of ``container`` (its :func:`version_key`) with its state, from one listing with
        metadata (5,000 a page), no body read."""
        prefix = f"{container}/"
        return {item.name[len(prefix):].removesuffix(".json"): ClaimState((item.metadata or {}).get("state",
                                                                                                 "submitted"))
                for item in self.container.list_blobs(name_starts_with=prefix, include=["metadata"])}

    def options_invalid(self, claim: Claim, errors: str) -> bool:
        """Record that the version was not submitted because its folder's options are invalid."""
        claim.state, claim.last_error, claim.updated_at = ClaimState.OPTIONS_INVALID, errors, self.clock()
        return self._write(claim)

    def record_skipped(self, container: str, blob: str, etag: str, reason: str,
                       options_errors: list[str] | None = None) -> None:
        """Note a blob version that does not qualify (same name for every delivery of it); for a
        folder's options file, whether it is valid."""
        body: dict[str, Any] = {"container": container, "blob": blob, "etag": etag, "reason": reason,
                                "at": self.clock()}
        if options_errors is not None:
            body["options_errors"] = options_errors
        text = json.dumps(body, sort_keys=True)
        # The record is in the blob's metadata too (percent-encoded: metadata is ASCII), so that one
        # listing with metadata reads thousands of them; a long one is left to its body.
        record = urllib.parse.quote(text)
        self.container.upload_blob(SKIPPED_INDEX + claim_blob_name(container, blob, etag), text.encode("utf-8"),
                                   overwrite=True, metadata={"record": record} if len(record) <= 4096 else None)

    def skipped(self, limit: int | None = None) -> list[SkippedBlob]:
        """The newest skipped blob versions first: one listing, and about ``limit`` bodies read."""
        from azure.core.exceptions import ResourceNotFoundError

        items = sorted(self.container.list_blobs(name_starts_with=SKIPPED_INDEX),
                       key=lambda item: item.last_modified, reverse=True)
        if limit is not None and len(items) > limit:
            # Last-modified times have whole seconds: keep every record as new as the limit-th one.
            items = [item for item in items if item.last_modified >= items[limit - 1].last_modified]
        found = []
        for item in items:
            try:
                found.append(SkippedBlob(**json.loads(self.container.download_blob(item.name).readall())))
            except ResourceNotFoundError:
                continue
            except (ValueError, TypeError) as exc:
                log.warning("skipping unreadable index blob %s: %s", item.name, exc)
        return sorted(found, key=lambda s: s.at, reverse=True)[:limit]

    def abandoned(self) -> list[Claim]:
        """Versions nobody will deliver again by themselves: claims left in 'submitting' past the
        stale bound (their invocation died), and released claims not yet poisoned whose retries
        are over (released for longer than ``min(RELEASED_RETRY_AFTER, stale bound)``)."""
        now = self.clock()
        stale = [c for state in (ClaimState.SUBMITTING, ClaimState.PENDING) for c in self.list(state)
                 if c.updated_at < now - self.stale_after]
        retry_after = min(RELEASED_RETRY_AFTER, self.stale_after)
        released = [c for c in self.list(ClaimState.RELEASED)
                    if c.failures < self.max_failures and c.updated_at < now - retry_after]
        return stale + released

    def abandon(self, claim: Claim, reason: str) -> bool:
        """Give back a claim whose invocation is known to be dead (its host stopped), without
        counting a failure: it was not the blob's fault. The next delivery takes it over and first
        checks for an existing run, as after any release."""
        claim.state, claim.last_error, claim.updated_at = ClaimState.RELEASED, reason, self.clock()
        return self._write(claim)

    def supersede(self, claim: Claim, reason: str) -> bool:
        claim.state, claim.last_error, claim.updated_at = ClaimState.SUPERSEDED, reason, self.clock()
        return self._write(claim)


def _same(stored: Claim, written: Claim) -> bool:
    """Whether ``stored`` is what ``written`` says, but for when it was written."""
    ignore = {"updated_at", "claim_etag"}
    return {k: v for k, v in stored.__dict__.items() if k not in ignore} == \
        {k: v for k, v in written.__dict__.items() if k not in ignore}
