"""Which blobs qualify, and which dataset a blob feeds. Pure functions."""

from __future__ import annotations

import re
import unicodedata
from posixpath import basename, dirname, splitext

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
#: Leaves room for the step's ``_<sheet-slug>`` suffix within AzureML's name length.
MAX_DATASET_NAME = 180


def skip_reason(name: str, size: int | None) -> str | None:
    """Why a blob is not a workbook to convert, or None if it qualifies.

    Skipping is normal (people drop other files too), so it is a reason to log, not an error.
    """
    leaf = basename(name)
    suffix = splitext(leaf)[1].lower()
    if suffix not in WORKBOOK_SUFFIXES:
        return f"not a workbook extension ({suffix or 'none'}; expected one of {' '.join(WORKBOOK_SUFFIXES)})"
    if leaf.startswith("~$"):
        return "an Office lock file (~$…), not a workbook"
    if size is not None and size <= 0:
        return "empty blob (0 bytes); the upload may still be in progress or have failed"
    return None


def sanitize_dataset_name(text: str) -> str:
    """A name AzureML accepts, in one style: lowercase letters, digits and ``_``, starting with a
    letter or digit (``Sales Team-EMEA`` → ``sales_team_emea``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    name = name[:MAX_DATASET_NAME].rstrip("_")
    return name or "workbook"


def dataset_name_for_blob(name: str) -> str:
    """``<folder>/<file>.xlsx`` feeds the dataset ``<folder>``; a blob at the container root feeds a
    dataset named after the file's stem. Nested folders join with ``_`` (``a/b/f.xlsx`` → ``a_b``)
    so that ``team1/sales`` and ``team2/sales`` stay apart."""
    folder = dirname(name.strip("/"))
    if folder:
        return sanitize_dataset_name(folder.replace("/", "_"))
    return sanitize_dataset_name(splitext(basename(name))[0])
