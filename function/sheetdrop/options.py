"""Which read options apply to a blob: the nearest ``sheetdrop.json`` up its folders.

``sales/emea/q3.xlsx`` looks at ``sales/emea/sheetdrop.json``, then ``sales/sheetdrop.json``, then
``sheetdrop.json`` at the container root: one small read per level, at most a handful.
"""

from __future__ import annotations

from posixpath import dirname
from typing import TYPE_CHECKING

from sheetdrop_contract import read_options

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


def candidates(blob_name: str) -> list[str]:
    names, folder = [], dirname(blob_name.strip("/"))
    while True:
        names.append(f"{folder}/{read_options.OPTIONS_FILE}" if folder else read_options.OPTIONS_FILE)
        if not folder:
            return names
        folder = dirname(folder)


def find(container: ContainerClient, blob_name: str) -> tuple[str | None, str | None]:
    """The nearest options file's name and text, or (None, None)."""
    from azure.core.exceptions import ResourceNotFoundError

    for name in candidates(blob_name):
        try:
            return name, container.download_blob(name).readall().decode("utf-8", errors="replace")
        except ResourceNotFoundError:
            continue
    return None, None


def for_blob(container: ContainerClient, blob_name: str) -> tuple[read_options.ReadOptions, str]:
    """The options that apply and the ``read_options`` parameter, which carries the file as written
    (the step parses it again). An invalid file is an OptionsError naming every mistake: the trigger
    records the workbook as ``options invalid`` and submits nothing."""
    name, text = find(container, blob_name)
    parameter = read_options.to_parameter(name, text)
    if name is None or text is None:
        return read_options.ReadOptions(), parameter
    return read_options.parse(text, name), parameter


def mistakes(container: ContainerClient, name: str, etag: str) -> list[str] | None:
    """Every mistake in one version of an options file (empty: it is valid); None when that version
    is no longer there to read (its successor has its own event)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    try:
        data = container.download_blob(name, etag=etag, match_condition=MatchConditions.IfNotModified).readall()
    except (ResourceModifiedError, ResourceNotFoundError):
        return None
    return read_options.check(data.decode("utf-8", errors="replace"), name)[1]
