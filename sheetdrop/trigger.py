"""What the Function does with a new blob: qualify it, name its dataset, submit its run.

``function_app.py`` only unpacks the binding and calls :func:`handle_blob`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sheetdrop.backends import Backend, SubmitRequest, get_backend
from sheetdrop.blobs import dataset_name_for_blob, skip_reason
from sheetdrop.settings import Settings, get_settings

log = logging.getLogger("sheetdrop.trigger")


@dataclass(frozen=True)
class BlobVersion:
    container: str
    name: str
    etag: str
    size: int | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def version_key(self) -> str:
        return f"{self.container}/{self.name}@{self.etag}"


@dataclass(frozen=True)
class Outcome:
    action: str  # "skipped" | "submitted"
    reason: str | None = None
    run_id: str | None = None
    url: str | None = None


def build_request(blob: BlobVersion, settings: Settings, invocation_id: str | None) -> SubmitRequest:
    dataset = dataset_name_for_blob(blob.name)
    tags = {
        "source_container": blob.container,
        "source_blob": blob.name,
        "source_etag": blob.etag,
    }
    if invocation_id:
        tags["function_invocation_id"] = invocation_id
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
    )


def handle_blob(
    blob: BlobVersion,
    *,
    invocation_id: str | None = None,
    settings: Settings | None = None,
    backend: Backend | None = None,
) -> Outcome:
    reason = skip_reason(blob.name, blob.size)
    if reason:
        log.info("skipped %s/%s: %s", blob.container, blob.name, reason)
        return Outcome("skipped", reason=reason)
    settings = settings or get_settings()
    backend = backend or get_backend(settings)
    request = build_request(blob, settings, invocation_id)
    result = backend.submit(request)
    log.info(
        "submitted %s/%s (etag %s) as run %s for dataset %s%s",
        blob.container, blob.name, blob.etag, result.run_id, request.dataset_name,
        f" — {result.url}" if result.url else "",
    )
    return Outcome("submitted", run_id=result.run_id, url=result.url)
