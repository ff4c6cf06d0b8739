"""Submit: where a qualified blob's pipeline run goes.

The trigger builds one :class:`SubmitRequest`; the backend named by ``SHEETDROP_BACKEND``
(:mod:`sheetdrop.submit.backends`) turns it into a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
    def submit(self, request: SubmitRequest) -> SubmitResult: ...

    def find_runs(self, source_container: str, source_blob: str, source_etag: str) -> list[str]:
        """Run ids already made for this blob version (for claim recovery)."""
        ...
