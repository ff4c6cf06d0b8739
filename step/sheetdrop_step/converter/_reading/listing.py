"""An .xls's or .ods's sheets, before any is read (in the reader process): as calamine lists them, or
xlrd where calamine cannot be trusted with the .xls (an Excel 2.x-4.0 file, BIFF5, an embedded chart,
sheet names calamine decodes otherwise than the workbook's own records: ``xls``); an .ods calamine
stops at rewritten without the whitespace between its cells (``packages.ods_without_spacing``). And how
a reader's failure is told: one another reader may not share (:func:`recoverable`), and the rejection
any other one is (:func:`classify`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sheetdrop_step.converter._job import Limits
from sheetdrop_step.converter._reading.packages import ods_without_spacing
from sheetdrop_step.converter._reading.task import SheetSkipped
from sheetdrop_step.converter._reading.xls import XlsBook, XlsGlobals, xls_globals
from sheetdrop_step.converter._rejection import WorkbookRejected, out_of_memory
from sheetdrop_step.converter._safety.guard import Inspection

#: Why a sheet of another kind than a worksheet is skipped, by its kind.
KINDS = {"chartsheet": "chart sheet", "dialogsheet": "dialog sheet", "macrosheet": "macro sheet",
         "module": "VBA module"}
_CELL_LIMIT = re.compile(r"Cell limit exceeded \((\d+) cells requested, max (\d+)\)")


@dataclass
class Listing:
    sheets: list[tuple[str, str]]  # (name, kind), in workbook order
    path: Path  # the file the reader opens
    xls: XlsBook | None = None  # xlrd's reading, where calamine cannot be trusted with the .xls
    date1904: bool = False
    notes: list[str] = field(default_factory=list)


def list_sheets(src: Path, path: Path, inspection: Inspection, staging: Path, limits: Limits) -> Listing:
    import fastexcel

    if inspection.fmt == "ods":
        try:
            return Listing([(name, "worksheet") for name in fastexcel.read_excel(str(path)).sheet_names], path)
        except BaseException as exc:
            if not recoverable(exc) or "found 'Text(" not in str(exc):
                raise
        # Text between the cells (KOffice writes its XML indented): calamine 0.36 stops at it.
        path = staging / "spaced.ods"
        ods_without_spacing(src, inspection, path, limits)
        return Listing([(name, "worksheet") for name in fastexcel.read_excel(str(path)).sheet_names], path,
                       notes=["whitespace between the cells of content.xml left out for the reader"])
    if inspection.biff is not None:
        return _by_xlrd(path, [], f"an Excel BIFF{inspection.biff} file without a compound file")
    try:
        found: XlsGlobals | None = xls_globals(path)
    except Exception:  # a compound file xlrd's reader refuses: calamine's may read it
        found = None
    listed = found.sheets if found else []
    try:
        if found and found.untrusted:
            raise ValueError("a substream inside a worksheet (an embedded chart), or not BIFF8")
        names = fastexcel.read_excel(str(path)).sheet_names
        lost = [s.name for s in listed if s.kind == "worksheet" and s.name not in names]
        if lost or any("\x00" in name for name in names):
            raise ValueError(f"calamine read the sheet names as {names!r}; the workbook lists {lost!r}")
    except BaseException as exc:
        if not recoverable(exc):
            raise
        return _by_xlrd(path, listed, str(exc))
    sheets = [(s.name, s.kind) for s in listed] if found else [(name, "worksheet") for name in names]
    return Listing(sheets, path, date1904=found.date1904 if found else False)


def _by_xlrd(path: Path, listed: list, why: str) -> Listing:
    """The .xls read by xlrd, which lists its worksheets only, in order: the workbook's own list (when
    there is one) gives the other sheets."""
    book = XlsBook(path)
    note = f"read by xlrd: {' '.join(why.split())[:200]}"
    worksheets = iter(book.names)
    if len([s for s in listed if s.kind == "worksheet"]) != len(book.names):
        return Listing([(name, "worksheet") for name in book.names], path, book, book.date1904, [note])
    return Listing([(next(worksheets), s.kind) if s.kind == "worksheet" else (s.name, s.kind) for s in listed],
                   path, book, book.date1904, [note])


def recoverable(exc: BaseException) -> bool:
    """A reader's failure that another reader may not share (calamine's panics are BaseExceptions)."""
    return not isinstance(exc, MemoryError | WorkbookRejected | SheetSkipped | KeyboardInterrupt | SystemExit)


def classify(exc: BaseException, memory_limit: int) -> WorkbookRejected:
    if isinstance(exc, WorkbookRejected):
        return exc
    if isinstance(exc, MemoryError):
        return WorkbookRejected("too-large", out_of_memory(memory_limit))
    text = f"{exc.__class__.__name__}: {exc}"
    if m := _CELL_LIMIT.search(text):  # calamine's own bound on an .ods sheet's repeated rows and cells
        return WorkbookRejected("too-large", f"a sheet declares {int(m[1]):,} cells (rows and cells repeated), above "
                                             f"the reader's limit of {int(m[2]):,}; delete stray cells far from the "
                                             "data and save again")
    if "password" in text.lower() or "encrypt" in text.lower():
        return WorkbookRejected("encrypted", "the workbook is password-protected; save it without a password and "
                                             "upload it again")
    return WorkbookRejected("corrupt", f"the workbook could not be read ({' '.join(text.split())[:300]}); open it "
                                       "in Excel or LibreOffice, save it again and re-upload")
