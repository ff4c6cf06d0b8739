"""Where a registered version lives, and the storage client for reads a person waits on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sheetdrop.claims import ClaimStore
from sheetdrop_local.registry import DatasetVersion
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient


def quick_service(settings: LocalSettings, *, retry_answers: bool = False) -> BlobServiceClient:
    """A storage client for what a person waits for: a connection refused or not made within 3 s
    is an error at once, not after 20 s of back-off (``retry_connect=0``, the storage SDK's
    ``StorageRetryPolicy``); an answer such as a 503 is retried only with ``retry_answers``
    (an upload), never for a read."""
    from azure.storage.blob import BlobServiceClient

    from sheetdrop.storage import blob_service, retry_options

    retries = retry_options(settings.storage) if retry_answers else {"retry_total": 0}
    options = {**retries, "retry_connect": 0, "connection_timeout": 3, "read_timeout": 30}
    if settings.storage.connection_string:
        return BlobServiceClient.from_connection_string(settings.storage.connection_string, **options)
    return blob_service(dataclasses.replace(settings.storage, retry_total=options["retry_total"]))


def check_reachable(settings: LocalSettings) -> None:
    """Raise what the storage client raises when nothing answers (within seconds)."""
    quick_service(settings).get_service_properties()


def connection_parts(settings: LocalSettings) -> dict[str, str]:
    """The connection string's ``Key=value`` parts (none without one)."""
    text = settings.storage.connection_string or ""
    return dict(part.split("=", 1) for part in text.split(";") if "=" in part)


def storage_endpoint(settings: LocalSettings) -> str:
    """The blob endpoint, for messages: never the connection string itself, which carries a key."""
    return connection_parts(settings).get("BlobEndpoint") or settings.storage.describe()


def claims_reader(settings: LocalSettings, service: BlobServiceClient) -> ClaimStore:
    return ClaimStore(service.get_container_client(settings.claims_container),
                      stale_after=settings.claim_stale_seconds, max_failures=settings.claim_max_failures)


@dataclass(frozen=True)
class Location:
    """Where a registered version's parquet is: the datastore it is registered on, and the storage
    container that plays that datastore in the embedded default."""

    datastore: str
    container: str
    path: str
    #: The blob's URL (no credentials in it).
    url: str

    @property
    def blob_path(self) -> str:
        return f"{self.container}/{self.path}"


def blob_path(settings: LocalSettings, version: DatasetVersion) -> str:
    """``<container>/<path>`` of a version, without a storage client (no URL needed)."""
    return f"{settings.local_container_for(version.datastore)}/{version.relative_path}"


def location(settings: LocalSettings, version: DatasetVersion, service: BlobServiceClient) -> Location:
    container = settings.local_container_for(version.datastore)
    url = service.get_blob_client(container, version.relative_path).url
    return Location(version.datastore, container, version.relative_path, url)
