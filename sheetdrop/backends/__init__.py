"""Submit backends: where a qualified blob's pipeline run goes.

The trigger builds one :class:`SubmitRequest`; the backend chosen by the
``SHEETDROP_BACKEND`` setting turns it into a run: an AzureML PipelineEndpoint
submission (cloud) or a queued run of the local pipeline runner (embedded default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sheetdrop.settings import Settings


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
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmitResult:
    run_id: str
    url: str | None = None


class SubmitError(RuntimeError):
    """The backend refused the submission (after any retries); the message names the cause."""


class Backend(Protocol):
    def submit(self, request: SubmitRequest) -> SubmitResult: ...

    def find_runs(self, source_container: str, source_blob: str, source_etag: str) -> list[str]:
        """Run ids already made for this blob version (for claim recovery)."""
        ...


def get_backend(settings: Settings) -> Backend:
    if settings.backend == "azureml":
        from sheetdrop.backends.azureml import AzureMLBackend

        return AzureMLBackend.from_settings(settings)
    from sheetdrop.backends.local import LocalBackend

    return LocalBackend.from_settings(settings)
