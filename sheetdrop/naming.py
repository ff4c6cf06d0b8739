"""Which blobs qualify, and which dataset a blob feeds. Pure functions; the naming rule itself is
the step's contract (``contract.slug``), so the Function and the step name things alike."""

from __future__ import annotations

from posixpath import basename, dirname, splitext

from step_scripts import contract

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")


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


def dataset_name_for_blob(name: str) -> str:
    """``<folder>/<file>.xlsx`` feeds the dataset ``<folder>``; a blob at the container root feeds a
    dataset named after the file's stem. Nested folders join with ``_`` (``a/b/f.xlsx`` → ``a_b``)
    so that ``team1/sales`` and ``team2/sales`` stay apart."""
    folder = dirname(name.strip("/"))
    return contract.slug(folder.replace("/", "_") if folder else splitext(basename(name))[0], "workbook")
