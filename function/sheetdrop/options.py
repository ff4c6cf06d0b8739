"""Which read options apply to a blob: the nearest ``sheetdrop.json`` up its folders.

``sales/emea/q3.xlsx`` looks at ``sales/emea/sheetdrop.json``, then ``sales/sheetdrop.json``, then
``sheetdrop.json`` at the container root: one small read per level, at most a handful.
"""

from __future__ import annotations

import logging
from posixpath import dirname
from typing import TYPE_CHECKING

from sheetdrop_contract import read_options

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

log = logging.getLogger("sheetdrop.trigger")


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
    """The options that apply (the defaults when the file is invalid) and the ``read_options``
    parameter, which carries the file as written: an invalid one fails the run, before conversion,
    with the message logged here."""
    name, text = find(container, blob_name)
    parameter = read_options.to_parameter(name, text)
    if name is None or text is None:
        return read_options.ReadOptions(), parameter
    try:
        return read_options.parse(text, name), parameter
    except read_options.OptionsError as exc:
        log.warning("%s: the run will fail before converting: %s; fix the file and upload the workbook again",
                    blob_name, exc)
        return read_options.ReadOptions(file=name), parameter
