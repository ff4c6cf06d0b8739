"""Submit: where a qualified blob's pipeline run goes.

The trigger builds one :class:`SubmitRequest`; the backend named by ``SHEETDROP_BACKEND``
(:mod:`sheetdrop.submit.backends`) turns it into a run. Many of them at once (a burst, a backfill) may go as one
:class:`BatchRequest` to a backend that has ``submit_batch`` (:class:`BatchBackend`): one run or job converts
them all (the batch step's contract: ``sheetdrop_contract.batch``); a backend without it gets them one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sheetdrop_contract import batch, contract


@dataclass(frozen=True)
class SubmitRequest:
    experiment_name: str
    datastore_name: str  # the input datastore: the DataPath's DataStoreName
    relative_path: str  # the blob's path on that datastore: the DataPath's RelativePath
    dataset_name: str
    description: str
    source_container: str
    source_blob: str
    source_etag: str
    #: The source tags (contract.SOURCE_TAGS) and where the submission came from.
    tags: dict[str, str] = field(default_factory=dict)
    #: The read_options parameter (read_options.to_parameter()).
    read_options: str = "{}"
    #: The input account's blob endpoint: where the step reads the blob version (the input_account parameter).
    input_account: str = ""
    #: Which attempt of the blob version this is: 1, then one more per re-run (``sheetdrop rerun``).
    attempt: int = 1

    def step_parameters(self) -> dict[str, str]:
        """The step's parameters for this blob version, each as the step reads it (``contract.encode_argument``:
        whether the service hands them to a shell is not documented for v1, and v2's command is run by bash).
        The step reads the blob itself, by etag, from input_account; it tags its run with source_version."""
        values = {
            contract.INPUT_ACCOUNT_PARAMETER: self.input_account,
            contract.DATASET_NAME_PARAMETER: self.dataset_name,
            contract.SOURCE_PARAMETER: contract.source_version(self.source_container, self.source_blob,
                                                               self.source_etag, self.attempt),
            contract.READ_OPTIONS_PARAMETER: self.read_options,
        }
        return {name: contract.encode_argument(value) for name, value in values.items()}


@dataclass(frozen=True)
class BatchRequest:
    """Versions to convert in one run: each as its own SubmitRequest says (its claim, dataset, read options and
    attempt), all for the same experiment and input account. ``batch_id``: the submitter's own name for the batch,
    the same on every resend (a backend finds a batch it already started by it)."""

    batch_id: str
    requests: tuple[SubmitRequest, ...]

    def __post_init__(self) -> None:
        if not self.requests:
            raise ValueError("a batch needs at least one version")
        shared = {(r.experiment_name, r.input_account, r.datastore_name) for r in self.requests}
        if len(shared) > 1:
            raise ValueError("a batch's versions share one experiment, input account and input datastore")
        if len(self.requests) > batch.MAX_VERSIONS or \
                len(self.manifest()) > batch.MAX_MANIFEST_CHARS:
            raise ValueError(f"a batch holds at most {batch.MAX_VERSIONS} versions in {batch.MAX_MANIFEST_CHARS} "
                             "characters of manifest: cut them with sheetdrop_contract.batch.batches")

    @property
    def first(self) -> SubmitRequest:
        return self.requests[0]

    def versions(self) -> list[batch.PinnedVersion]:
        return [batch.PinnedVersion(r.source_container, r.source_blob, r.source_etag, r.dataset_name,
                                    r.read_options, r.attempt) for r in self.requests]

    def manifest(self) -> str:
        """The manifest parameter, as the step reads it (encoded)."""
        return batch.encode_manifest(self.versions())

    def step_parameters(self) -> dict[str, str]:
        """The batch run's parameters: the manifest, the input account, and the single version's others at their
        placeholders (each encoded as the step reads it)."""
        values = {
            contract.INPUT_ACCOUNT_PARAMETER: self.first.input_account,
            contract.DATASET_NAME_PARAMETER: contract.PLACEHOLDER_DATASET_NAME,
            contract.SOURCE_PARAMETER: contract.PLACEHOLDER_SOURCE,
            contract.READ_OPTIONS_PARAMETER: contract.PLACEHOLDER_READ_OPTIONS,
        }
        return {**{name: contract.encode_argument(value) for name, value in values.items()},
                batch.MANIFEST_PARAMETER: self.manifest()}


@dataclass(frozen=True)
class SubmitResult:
    run_id: str
    url: str | None = None
    #: The backend made no run: one for this blob version existed already (the local run store keeps one
    #: per version even when the claims forget).
    existing: bool = False


class SubmitError(RuntimeError):
    """The backend refused the submission (after any retries); the message names the cause."""


class Backend(Protocol):
    """A backend may also offer ``submit_batch(batch: BatchRequest) -> SubmitResult`` (one run for many versions);
    one that does not gets every version on its own."""

    def submit(self, request: SubmitRequest) -> SubmitResult: ...

    def find_runs(self, source_container: str, source_blob: str, source_etag: str, attempt: int = 1) -> list[str]:
        """Run ids already made for this attempt of this blob version (for claim recovery), a batch run that
        converts it among them."""
        ...


class BatchBackend(Backend, Protocol):
    def submit_batch(self, batch: BatchRequest) -> SubmitResult:
        """One run (or job) for every version of the batch: its id; the same batch again (a resend after a lost
        answer) gets the same run, never a second one."""
        ...
