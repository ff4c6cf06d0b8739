"""The workbook the step converts: exactly the blob version its run names, read by the step itself.

A mount reads whatever the blob holds when it is read, minutes after the upload that made the run, so the
step reads the blob with ``If-Match: <etag>`` (``download_blob(etag=…, match_condition=IfNotModified)``):
the version it was submitted for, or nothing. A version replaced in between answers 412 and ends the run as
superseded, naming the etag that replaced it (that version has its own event, claim and run); a blob deleted
in between is gone. Where the account is comes with the run (``--input_account``); with which credential it
is read is the context's business (the compute's managed identity in AzureML, Azurite's account locally).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

#: A suffix kept on the local copy when its name cannot be the blob's own (the converter tells formats by content).
SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")
MAX_FILE_NAME = 200


class Superseded(Exception):
    """The blob no longer holds the version the run names: another upload replaced it."""

    def __init__(self, newer_etag: str) -> None:
        super().__init__(newer_etag)
        self.newer_etag = newer_etag


class InputGone(Exception):
    """The blob was deleted before the run read it."""


class InputUnreachable(Exception):
    """Storage did not answer (its retries spent): not the workbook's fault."""


def local_name(blob: str) -> str:
    """The copy's file name in the step's own temporary folder: the blob's last segment (the converter's log names
    the file), or ``input`` + its suffix where that segment could not be a file name. Never on a command line."""
    name = PurePosixPath(blob).name
    if name not in ("", ".", "..") and "\0" not in name and len(name.encode()) <= MAX_FILE_NAME:
        return name
    suffix = PurePosixPath(blob).suffix
    return f"input{suffix if SUFFIX.fullmatch(suffix) else ''}"


def fetch(account_url: str, credential: Any, source: dict[str, str], folder: Path, retries: int = 4) -> Path:
    """Copy the blob version ``source`` names (container, blob, etag) into ``folder`` (a folder of the step's own,
    under :func:`local_name`)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import (
        ResourceModifiedError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.storage.blob import BlobClient

    container, name, etag = source["source_container"], source["source_blob"], source["source_etag"]
    target = folder / local_name(name)
    # The storage SDK's exponential retry, from 1 s (its default first wait is 15 s).
    blob = BlobClient(account_url, container, name, credential=credential, retry_total=retries, initial_backoff=1,
                      increment_base=2)
    where = f"{container}/{name}"
    try:
        with open(target, "wb") as handle:
            blob.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified).readinto(handle)
        return target
    except ResourceModifiedError:
        # Storage answers 412 to a conditional read of a deleted blob too (as Azurite does): ask which.
        try:
            newer = blob.get_blob_properties().etag
        except ResourceNotFoundError:
            raise InputGone(f"the blob {where} was deleted before this run read it") from None
        raise Superseded(newer) from None
    except ResourceNotFoundError:
        raise InputGone(f"the blob {where} was deleted before this run read it") from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise InputUnreachable(f"storage at {account_url} did not answer reading {where}: {exc}") from exc


def shared_key(connection_string: str) -> dict[str, str]:
    """The account key credential in a storage connection string (locally: Azurite's published key)."""
    parts = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return {"account_name": parts["AccountName"], "account_key": parts["AccountKey"]}


def compute_identity() -> Any:
    """The credential of the compute the job runs on, inside AzureML: azure-identity picks AzureML's own
    managed-identity endpoint (MSI_ENDPOINT, MSI_SECRET) there; ``DEFAULT_IDENTITY_CLIENT_ID`` names the
    identity (docs/azureml-v2.md, "The step's identity")."""
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=os.environ.get("DEFAULT_IDENTITY_CLIENT_ID") or None)
