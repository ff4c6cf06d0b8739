"""The embedded default's Event Grid: BlobCreated events in a storage queue.

In Azure, Event Grid pushes a BlobCreated event to the blob extension's webhook for every upload.
Azurite has no Event Grid, so ``sheetdrop drop`` posts the same event, in Event Grid's schema, to
the queue EVENTS_QUEUE of the same account — as an Event Grid subscription with a Storage Queue
handler would — and the dev host reads it: a drop is noticed within one poll of the queue however
many blobs the container holds. Blobs that other tools upload have no event; the host's
reconciliation listing finds them (devhost.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sheetdrop.storage import retry_options

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

    from sheetdrop.settings import StorageSettings

EVENTS_QUEUE = "sheetdrop-blob-created"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
#: Seconds a received event stays invisible to other readers before it is delivered again.
VISIBILITY_TIMEOUT = 300


@dataclass(frozen=True)
class BlobCreated:
    container: str
    name: str
    etag: str
    message_id: str
    pop_receipt: str


def events_queue(storage: StorageSettings) -> QueueClient:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    if not storage.connection_string:
        raise ValueError("the local event queue needs a connection string (the embedded default's Azurite)")
    queue = QueueClient.from_connection_string(storage.connection_string, EVENTS_QUEUE, **retry_options(storage))
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def blob_created(account: str, container: str, name: str, etag: str, size: int, url: str) -> dict[str, Any]:
    """An event in Event Grid's schema for Blob Storage (the fields the blob extension reads)."""
    return {
        "topic": f"/subscriptions/local/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/{account}",
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": BLOB_CREATED,
        "id": str(uuid.uuid4()),
        "eventTime": datetime.now(UTC).isoformat(),
        "data": {"api": "PutBlob", "eTag": etag, "contentLength": size, "blobType": "BlockBlob", "url": url},
        "dataVersion": "",
        "metadataVersion": "1",
    }


def post(queue: QueueClient, event: dict[str, Any]) -> None:
    # Base64, as Event Grid's Storage Queue handler encodes it.
    queue.send_message(base64.b64encode(json.dumps(event).encode("utf-8")).decode("ascii"))


def receive(queue: QueueClient, limit: int = 32) -> Iterator[BlobCreated]:
    """Pending BlobCreated events; anything else in the queue is dropped with no effect."""
    for message in queue.receive_messages(messages_per_page=limit, max_messages=limit,
                                          visibility_timeout=VISIBILITY_TIMEOUT):
        try:
            event = json.loads(base64.b64decode(message.content))
            prefix, _, name = event["subject"].partition("/blobs/")
            container = prefix.rsplit("/", 1)[-1]
            if event["eventType"] != BLOB_CREATED or not name:
                raise ValueError(event["eventType"])
            yield BlobCreated(container, name, event["data"]["eTag"], message.id, message.pop_receipt)
        except (ValueError, KeyError, TypeError):
            queue.delete_message(message.id, message.pop_receipt)
