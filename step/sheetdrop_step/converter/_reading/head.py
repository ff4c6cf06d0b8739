"""What a sheet's first rows tell before it is parsed (in the reader process): the dtype each column is
read with, where the table starts (header detection on those rows), and the cells above its data.
xlsx, xlsm and xlsb: python-calamine on a package of the first rows alone (milliseconds, no pyarrow);
xls and ods: the book's own reader, which parses the sheet whole anyway.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_step.converter._columns.cells import Cell
from sheetdrop_step.converter._job import Limits
from sheetdrop_step.converter._reading import xlsb
from sheetdrop_step.converter._reading.fastexcel import FastexcelBook, dtype_for
from sheetdrop_step.converter._reading.packages import head_package, read_head, rows_from, sheet_head
from sheetdrop_step.converter._reading.task import NeedsPatch, Task
from sheetdrop_step.converter._rejection import WorkbookRejected
from sheetdrop_step.converter._safety.guard import Inspection
from sheetdrop_step.converter._safety.scan import SheetScan, area_checked
from sheetdrop_step.converter._table.header import WINDOW, HeaderChoice, find_header

HEAD_ROWS = 1000
HEAD_BYTES = 1024**2


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text" if value else None  # python-calamine gives error cells as "" too
    if isinstance(value, dt.timedelta):
        return "duration"
    return "datetime" if isinstance(value, dt.date | dt.time) else None


@dataclass
class Head:
    """What a sheet's first rows tell: the types to read its columns with (absolute column → fastexcel
    dtype, kind of its native values), where its table starts, and the cells above its data exactly
    (row → column → cell: the header's, and the title rows')."""

    types: dict[int, tuple[str, str]] = field(default_factory=dict)
    choice: HeaderChoice | None = None
    above: dict[int, dict[int, Cell]] = field(default_factory=dict)
    seen: int = 0  # rows of the range the first rows held


def _cell(value: Any) -> Cell | None:
    kind = _kind(value)
    if isinstance(value, dt.time):
        kind, value = "time", dt.datetime.combine(dt.date(1899, 12, 31), value)
    elif kind == "datetime" and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return (kind, float(value) if kind == "number" else value) if kind else None


def choose_types(rows: list[list[Any]], first_column: int, first_row: int = 0,
                 options: ReadOptions | None = None) -> Head:
    """From the kinds in the rows below the header (``_table.header.find_header`` on the first rows
    holding values, inside the options' range): numbers → float, text → string, booleans → boolean,
    dates, times or durations → duration (a number, text or boolean among them is reported), dates
    next to durations → float (each reported with its subtype), any other mix → duration (all but the
    dates reported)."""
    options = options or ReadOptions()
    area = options.cell_range()
    low, high = (area.first_col, area.last_col) if area else (0, None)
    kept = [(first_row + i, row) for i, row in enumerate(rows) if not area or (
        area.first_row <= first_row + i and (area.last_row is None or first_row + i <= area.last_row))]
    grid: dict[int, dict[int, Cell]] = {}
    for r, row in kept:
        if len(grid) == WINDOW:
            break
        cells = {c: cell for j, value in enumerate(row) if (cell := _cell(value)) is not None
                 and low <= (c := first_column + j) and (high is None or c <= high)}
        if cells:
            grid[r] = cells
    choice = find_header(grid, options.header_rows)
    if choice is None:
        return Head()
    kinds: dict[int, set[str]] = {}
    rows_in = {r for r, _ in kept}
    for i, row in enumerate(rows):
        if first_row + i < choice.data:
            continue
        for j, value in enumerate(row):
            # A column outside the range is read too (and dropped): typed from its rows below the
            # header, so that nothing of it is coerced silently, which the count check would read again.
            inside = low <= first_column + j and (high is None or first_column + j <= high)
            if (first_row + i in rows_in or not inside) and (kind := _kind(value)):
                kinds.setdefault(first_column + j, set()).add(kind)
    above = {r: cells for r, cells in grid.items() if r < choice.data}
    return Head({column: dtype_for(found) for column, found in kinds.items()}, choice, above, len(kept))


def head_types(path: Path, inspection: Inspection, task: Task, limits: Limits, book: FastexcelBook | None = None,
               options: ReadOptions | None = None) -> Head:
    """:func:`choose_types` on the sheet's first rows (of the options' range): as python-calamine reads
    them from a package of those rows alone (xlsx, xlsm, xlsb: milliseconds, no pyarrow), or as
    ``book`` reads them (xls and ods, which its reader has parsed whole anyway)."""
    area = options.cell_range() if options else None
    first = area.first_row if area else 0
    try:
        if book is not None:
            return choose_types(*book.head_rows(task, first, HEAD_ROWS), first, options)
        info = inspection.entries[task.part or ""]
        # A range that starts further down: its own first rows (the sheet's first MiB may hold none of
        # them, or too few to find its header in).
        deep = rows_from(path, info, first, HEAD_BYTES) if first and inspection.fmt != "xlsb" else None
        head = _calamine_head(path, inspection, task, limits, deep or read_head(path, info, HEAD_BYTES), options)
        if first and deep is None and head.seen < WINDOW:
            head.choice, head.above = None, {}  # the table's own rows decide its header
        return head
    except (WorkbookRejected, KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:  # python-calamine's panics are BaseExceptions
        if "Unsupported cell error value" in str(exc):
            raise NeedsPatch(str(exc)) from exc
        return Head()  # the parse itself will tell what is wrong


def _calamine_head(path: Path, inspection: Inspection, task: Task, limits: Limits, xml: bytes,
                   options: ReadOptions | None) -> Head:
    import python_calamine

    if inspection.fmt == "xlsb":
        cut = xlsb.sheet_head(xml, HEAD_ROWS)
    else:
        # The scan's area check, before any parse: a small sheet with one value far away is refused
        # before a reader tries to allocate its range.
        scan = SheetScan()
        scan.feed(xml)
        area_checked(task.name, scan.counts, limits)
        cut = sheet_head(xml, HEAD_ROWS)
    if cut is None:
        return Head()
    sheet = python_calamine.CalamineWorkbook.from_filelike(
        io.BytesIO(head_package(path, inspection, task.part or "", cut, limits))).get_sheet_by_name(task.name)
    start = sheet.start or (0, 0)
    return choose_types(sheet.to_python(nrows=HEAD_ROWS), start[1], start[0], options)
