"""Blob storage clients for the configured input account (Azurite locally)."""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

    from sheetdrop.settings import StorageSettings


def retry_options(storage: StorageSettings) -> dict[str, int]:
    """The storage clients' retries. The SDK's default first backoff is 15 s; a short outage of the
    emulator (or a blip in Azure) should cost seconds, and a longer one is handled above the client
    (requeue, host retry)."""
    return {"retry_total": storage.retry_total, "initial_backoff": 2, "increment_base": 2}


@functools.cache
def blob_service(storage: StorageSettings) -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    retry = retry_options(storage)
    if storage.connection_string:
        return BlobServiceClient.from_connection_string(storage.connection_string, **retry)
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(managed_identity_client_id=storage.client_id)
    return BlobServiceClient(account_url=storage.account_url, credential=credential, **retry)


def account_url(storage: StorageSettings) -> str:
    """The input account's blob endpoint (``https://<account>.blob.core.windows.net``), never with a key: what
    the step reads the blob from (``input_account``)."""
    return (storage.account_url or blob_service(storage).url).rstrip("/")


def ensure_container(service: BlobServiceClient, name: str) -> ContainerClient:
    from azure.core.exceptions import ResourceExistsError

    container = service.get_container_client(name)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    return container


def storage_unreachable(exc: BaseException) -> bool:
    """A failure to reach storage at all (as opposed to an answer from it): worth trying again later."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    return isinstance(exc, ServiceRequestError | ServiceResponseError | ConnectionError)


def one_line(exc: BaseException) -> str:
    """An error as one line a person reads: a storage answer as its status, code and message (not
    the request id, time and XML the SDK appends), anything else as its type and first line."""
    from azure.core.exceptions import HttpResponseError

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if isinstance(exc, HttpResponseError) and exc.status_code:
        code = f" {exc.error_code}" if getattr(exc, "error_code", None) else ""
        text = f"storage answered {exc.status_code}{code}: {first}"
    else:
        text = f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__
    return text if len(text) <= 300 else text[:299] + "…"
