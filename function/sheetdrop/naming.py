"""Which blobs qualify, and which dataset a blob feeds.

The naming rule itself is the step's contract (``contract.slug``), so the Function and the step
name things alike. A rule that folds case and drops what it cannot transliterate makes different
folders meet (``Sales/`` and ``sales/``; ``中文文件夹/`` and ``日本語のフォルダ/``); so a name belongs
to the first folder that used it, recorded next to the claims, and another folder whose name folds
to the same text gets the name with a short stable hash of its own path (README, "Rules").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from posixpath import basename, dirname, splitext
from typing import TYPE_CHECKING

from sheetdrop_contract import contract, read_options

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")


def skip_reason(name: str, size: int | None) -> str | None:
    """Why a blob is not a workbook to convert, or None if it qualifies.

    Skipping is normal (people drop other files too), so it is a reason to log, not an error.
    """
    leaf = basename(name)
    suffix = splitext(leaf)[1].lower()
    if leaf == read_options.OPTIONS_FILE:
        return "the read options of its folder (README, \"Read options\"), not a workbook"
    if suffix not in WORKBOOK_SUFFIXES:
        return f"not a workbook extension ({suffix or 'none'}; expected one of {' '.join(WORKBOOK_SUFFIXES)})"
    if leaf.startswith("~$"):
        return "an Office lock file (~$…), not a workbook"
    if size is not None and size <= 0:
        return "empty blob (0 bytes); the upload may still be in progress or have failed"
    return None


def dataset_source(name: str) -> str:
    """What a blob's dataset stands for: ``<folder>/<file>.xlsx`` feeds the dataset of ``<folder>``
    (nested folders whole: ``a/b``); a blob at the container root, its file's stem."""
    folder = dirname(name.strip("/"))
    return folder or splitext(basename(name))[0]


def _digest(source: str, length: int) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:length]


def dataset_name(source: str) -> str:
    """The name a source would like: nested folders join with ``_`` (``a/b`` → ``a_b``, so that
    ``team1/sales`` and ``team2/sales`` stay apart); where nothing survives transliteration,
    ``f_<hash>``."""
    return contract.slug(source.replace("/", "_"), "") or f"f_{_digest(source, 8)}"


NAMES_PREFIX = "_names/"


@dataclass
class DatasetNames:
    """Which source owns which dataset name; one small blob per name, created with If-None-Match,
    so two folders can never both take a name."""

    container: ContainerClient

    def name_for(self, source: str) -> str:
        base = dataset_name(source)
        for candidate in (base, f"{base}_{_digest(source, 8)}", f"{base}_{_digest(source, 16)}"):
            if self._owner(candidate, source) == source:
                return candidate
        raise RuntimeError(f"no free dataset name for {source!r} (tried {base} and two hashed forms)")

    def _owner(self, name: str, source: str) -> str:
        from azure.core.exceptions import ResourceExistsError

        client = self.container.get_blob_client(f"{NAMES_PREFIX}{name}")
        try:
            client.upload_blob(json.dumps({"source": source}), overwrite=False)
            return source
        except ResourceExistsError:
            return str(json.loads(client.download_blob().readall())["source"])
