"""The blobs of table-mode folders the Function has delivered, noted so that the timer can tell when one is deleted
(:mod:`sheetdrop.deletions`).

One small blob per workbook in the claims container, ``_index/tables/<container>/<sha256 of the name>``, rewritten
by each delivery of a version: its metadata names the blob (percent-encoded: metadata is ASCII), the version's
etag and the dataset its folder feeds, so one listing with metadata (5,000 a page) gives every noted blob without
reading a body; the body keeps what the version's run was asked for (dataset, read options), which a deletion's
run asks for again: the folder's ``sheetdrop.json`` may be gone with its workbooks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from sheetdrop.claims import INDEX_PREFIX

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

NOTES = f"{INDEX_PREFIX}tables/"


@dataclass(frozen=True)
class Noted:
    container: str
    blob: str
    etag: str
    dataset: str
    #: The note itself, as listed: removed only if unchanged since (a later delivery rewrites it).
    note: str
    note_etag: str


def note_name(container: str, blob: str) -> str:
    return f"{NOTES}{container}/{hashlib.sha256(blob.encode('utf-8')).hexdigest()}"


def note(claims: ContainerClient, container: str, blob: str, etag: str, dataset: str, read_options: str) -> None:
    """A version of a table-mode folder's workbook was delivered (its run converts it, or finds it gone)."""
    body = json.dumps({"blob": blob, "etag": etag, "dataset": dataset, "read_options": read_options})
    claims.upload_blob(note_name(container, blob), body.encode("utf-8"), overwrite=True,
                       metadata={"blob": quote(blob, safe=""), "etag": quote(etag, safe=""),
                                 "dataset": quote(dataset, safe="")})


def noted(claims: ContainerClient, container: str) -> Iterator[Noted]:
    prefix = f"{NOTES}{container}/"
    for item in claims.list_blobs(name_starts_with=prefix, include=["metadata"]):
        metadata = item.metadata or {}
        if "blob" in metadata and "etag" in metadata:
            yield Noted(container, unquote(metadata["blob"]), unquote(metadata["etag"]),
                        unquote(metadata.get("dataset", "")), item.name, item.etag)


def request_of(claims: ContainerClient, found: Noted) -> dict[str, str]:
    """What the noted version's run was asked for: ``dataset`` and ``read_options``."""
    return json.loads(claims.download_blob(found.note).readall())


def forget(claims: ContainerClient, found: Noted) -> bool:
    """Remove the note if no delivery rewrote it since it was listed; False if one did (a new version)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    try:
        claims.delete_blob(found.note, etag=found.note_etag, match_condition=MatchConditions.IfNotModified)
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True
