"""Blob storage clients for the configured input account (Azurite locally)."""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

    from sheetdrop.settings import StorageSettings


@functools.cache
def blob_service(storage: StorageSettings) -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    if storage.connection_string:
        return BlobServiceClient.from_connection_string(storage.connection_string)
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(managed_identity_client_id=storage.client_id)
    return BlobServiceClient(account_url=storage.account_url, credential=credential)


def ensure_container(service: BlobServiceClient, name: str) -> ContainerClient:
    from azure.core.exceptions import ResourceExistsError

    container = service.get_container_client(name)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    return container
