"""Submit: where a qualified blob's pipeline run goes.

The trigger builds one :class:`SubmitRequest`; the backend named by ``SHEETDROP_BACKEND``
(:mod:`sheetdrop.submit.backends`) turns it into a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sheetdrop_contract import contract


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
    """Many blob versions for one run or job (a burst of drops, a backfill): ``batch_id`` names it, so that a
    resend after a lost answer can be told from a second batch."""

    batch_id: str
    requests: tuple[SubmitRequest, ...]


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
        """Run ids already made for this attempt of this blob version (for claim recovery)."""
        ...
