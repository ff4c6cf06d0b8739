"""Reading one sheet, once, into :class:`convert_columns.ColumnRead` columns (in the reader process).

fastexcel parses a sheet straight into Arrow, reporting each cell it cannot convert to its column's
type with its exact original (:func:`original`) — but not every one (``tests/test_convert_cell_kinds.py``
pins down which it coerces silently). So each column's type is chosen before the parse from the first
rows (:func:`head_types`, :func:`choose_types`) such that the rest comes back natively or reported, and
what the first rows did not show is caught by the count check (:func:`check`). xls goes to xlrd where
calamine cannot be trusted with it (:class:`XlsBook`).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_step import convert_xlsb
from sheetdrop_step.convert_guard import Inspection
from sheetdrop_step.convert_header import WINDOW, HeaderChoice, find_header
from sheetdrop_step.convert_job import Limits
from sheetdrop_step.convert_package import head_package, read_head, rows_from, sheet_head
from sheetdrop_step.convert_scan import SheetCounts, SheetScan, area_checked
from sheetdrop_step.rejection import WorkbookRejected

if TYPE_CHECKING:  # pyarrow (under convert_columns) is imported while the first sheet is parsed
    from sheetdrop_step.convert_columns import Cell, ColumnRead

HEAD_ROWS = 1000
HEAD_BYTES = 1024**2
MAX_COLUMNS = 16_384
DEFAULT = ("float", "number")  # a column with nothing in the first rows
_ISO_DURATION = re.compile(r"P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$")
_EXCEL_DATETIME = re.compile(r"value: ([^,]+), datetime_type: (\w+), is_1904: (\w+)")
_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|.)")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}


@dataclass
class Task:
    index: int  # position among the workbook's sheets
    name: str
    part: str | None = None  # zip entry of the sheet (xlsx, xlsm, xlsb)
    size: int = 0  # the part's uncompressed size


class SheetSkipped(Exception):
    """The sheet gives no table: a chart sheet, a hidden sheet, no value in any cell."""


class NeedsPatch(Exception):
    """The reader refuses error values it does not know (#SPILL!, #CALC!, ...) in this sheet."""


def original(detail: str, date1904: bool) -> Cell:
    """The cell fastexcel could not convert, from its error detail (Rust's Debug of calamine's value)."""
    from sheetdrop_step.convert_columns import serial_datetime

    raw = detail[detail.find("but got '") + 9:]
    if raw.endswith("'") and (raw[:-1].endswith(")") or raw == "Empty'"):
        raw = raw[:-1]
    name, _, body = raw.partition("(")
    body = body[:-1]
    if name in ("Float", "Int"):
        return "number", float(body)
    if name == "Bool":
        return "bool", body == "true"
    if name in ("String", "DateTimeIso", "DurationIso"):
        text = _ESCAPE.sub(_unescape, body[1:-1])
        if name == "String":
            return "text", text
        if name == "DurationIso":
            return "duration", _iso_duration(text)
        return "datetime", dt.datetime.fromisoformat(text)
    if name == "DateTime":
        m = _EXCEL_DATETIME.search(body)
        if m:
            days = float(m.group(1))
            if m.group(2) == "TimeDelta":
                return "duration", dt.timedelta(milliseconds=round(days * 86_400_000))
            return "datetime", serial_datetime(days, m.group(3) == "true")
    return "error", body or name


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    return chr(int(code[2:-1], 16)) if code.startswith("u{") else _ESCAPES.get(code, code)


def _iso_duration(text: str) -> dt.timedelta:
    m = _ISO_DURATION.match(text.lstrip("-"))
    if not m:
        raise ValueError(f"not an ISO duration: {text!r}")
    d, h, mi, sec = (float(g or 0) for g in m.groups())
    value = dt.timedelta(days=d, hours=h, minutes=mi, seconds=sec)
    return -value if text.startswith("-") else value


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
    """From the kinds in the rows below the header (``convert_header.find_header`` on the first rows
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
    return Head({column: _dtype(found) for column, found in kinds.items()}, choice, above, len(kept))


def _dtype(kinds: set[str]) -> tuple[str, str]:
    if len(kinds) == 1:
        kind = next(iter(kinds))
        return {"number": DEFAULT, "text": ("string", "text"), "bool": ("boolean", "bool")}.get(
            kind, ("duration", kind))
    if {"datetime", "duration"} <= kinds:
        return DEFAULT
    return "duration", "duration" if "duration" in kinds else "datetime"


def head_types(path: Path, inspection: Inspection, task: Task, limits: Limits, book: FastexcelBook | None = None,
               options: ReadOptions | None = None) -> Head:
    """:func:`choose_types` on the sheet's first rows (of the options' range): as python-calamine reads
    them from a package of those rows alone (xlsx, xlsm, xlsb: milliseconds, no pyarrow), or as
    ``book`` reads them (xls and ods, which its reader has parsed whole anyway)."""
    area = options.cell_range() if options else None
    first = area.first_row if area else 0
    try:
        if book is not None:
            return choose_types(*book.head_rows(task, first), first, options)
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
        cut = convert_xlsb.sheet_head(xml, HEAD_ROWS)
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


class FastexcelBook:
    """One thread's fastexcel reader on a package (a reader is not shared between threads)."""

    def __init__(self, path: Path, inspection: Inspection, include_hidden: bool = True) -> None:
        import fastexcel

        self.inspection, self.include_hidden = inspection, include_hidden
        self.reader = fastexcel.read_excel(str(path))

    def head_rows(self, task: Task, first: int = 0) -> tuple[list[list[Any]], int]:
        """The first rows' values (from row ``first``) with their kinds, from two small reads under types
        that report every cell but dates (``duration``) and every date with its subtype (``float``)."""
        strict = self.load(task, {}, HEAD_ROWS, "duration", first=first)[0]
        dates = {c.index: c.foreign for c in self.load(task, {}, HEAD_ROWS, "float", first=first)[0]}
        rows: list[list[Any]] = [[None] * len(strict) for _ in range(len(strict[0].native) if strict else 0)]
        for j, col in enumerate(strict):
            for r, present in enumerate(col.native.is_valid().to_pylist()):
                cell = col.foreign.get(first + r) or (dates[col.index].get(first + r) if present else None)
                rows[r][j] = cell[1] if cell and cell[0] != "error" else None
        return rows, strict[0].index if strict else 0

    def load(self, task: Task, types: dict[int, tuple[str, str]], rows: int | None = None,
             every: str | None = None, only: list[int] | None = None, first: int = 0, lacks_before: bool = False,
             ) -> tuple[list[ColumnRead], int]:
        """The sheet's columns (``only`` these) as read with these types (or ``every`` column as one),
        and its number of rows; from its ``first`` row (in a piece, :class:`convert_package.Piece`,
        which ``lacks_before`` that row: one there is out of order, a ValueError)."""
        dtypes = every or {i: types.get(i, DEFAULT)[0] for i in range(MAX_COLUMNS)}
        try:
            # skip_rows=0: rows counted from the sheet's first (a piece's: the row before it, which it
            # lacks, taken as the header), whatever columns are read.
            sheet = self.reader.load_sheet(task.name, header_row=first - 1 if first else None, skip_rows=0,
                                           dtypes=dtypes, n_rows=rows, use_columns=only)
        except Exception as exc:
            text = str(exc)
            if "Unsupported cell error value" in text:
                raise NeedsPatch(text) from exc
            if "not a valid worksheet" in text or "chartsheet" in text.lower():
                raise SheetSkipped("chart sheet") from exc
            raise
        if lacks_before and any(info.column_name_from != "generated" for info in sheet.selected_columns):
            raise ValueError(f"row {first} is in the piece that starts at row {first + 1}: rows out of order")
        if self.inspection.sheets is None and sheet.visible != "visible" and not self.include_hidden:
            raise SheetSkipped(f"{'hidden' if sheet.visible == 'hidden' else 'veryHidden'} sheet")
        import pyarrow as pa

        from sheetdrop_step.convert_columns import ColumnRead, serial_timestamps

        batch, errors = sheet.to_arrow_with_errors()
        infos = sheet.selected_columns
        at = {info.index: j for j, info in enumerate(infos)}  # error positions count the sheet's columns
        foreign: list[dict[int, Cell]] = [{} for _ in infos]
        date1904 = self.inspection.date1904
        for err in errors.errors if errors is not None else []:
            row, col = err.offset_position
            foreign[at[col]][first + row] = original(err.detail, date1904)
        columns = []
        for j, info in enumerate(infos):
            dtype, kind = (every, None) if every else types.get(info.absolute_index, DEFAULT)
            native = batch.column(j)
            if dtype == "duration" and kind == "datetime":
                native = serial_timestamps(native.cast(pa.int64()), date1904)
            columns.append(ColumnRead(info.absolute_index, native, kind, foreign[j]))
        return columns, batch.num_rows


def merge(reads: list[tuple[int, list[ColumnRead], int]]) -> list[ColumnRead]:
    """A sheet read in pieces (first row, columns, rows read) as one read: each piece's rows run up to
    the next one's first (rows past it would be out of order: ValueError), a column a piece lacks is
    empty there, and the columns run from the first to the last any piece has, as in one read."""
    import pyarrow as pa

    from sheetdrop_step.convert_columns import ColumnRead

    ends = [first for first, _, _ in reads[1:]] + [reads[-1][0] + reads[-1][2]]
    if any(first + rows > end for (first, _, rows), end in zip(reads, ends, strict=True)):
        raise ValueError("rows out of order across pieces")
    pieces = [({c.index: c for c in cols}, end - first) for (first, cols, _), end in zip(reads, ends, strict=True)]
    found = {i: c for columns, _ in pieces for i, c in columns.items()}
    merged = []
    for index in range(min(found), max(found) + 1) if found else ():
        # A column no piece has holds no value: its type cannot matter.
        kind, dtype = (found[index].kind, found[index].native.type) if index in found else ("number", pa.float64())
        held = [(columns.get(index), rows) for columns, rows in pieces]
        native = pa.concat_arrays([array for col, rows in held for array in (
            [col.native, pa.nulls(rows - len(col.native), dtype)] if col else [pa.nulls(rows, dtype)])])
        foreign = {r: cell for col, _ in held if col for r, cell in col.foreign.items()}
        merged.append(ColumnRead(index, native, kind, foreign))
    return merged


#: Cells reported at once by a second read (each is a Python object of ~300 bytes): a second read of
#: more columns is made in groups of columns, one parse each.
STRICT_CELLS = 2_000_000


def check(columns: list[ColumnRead], head: Head, expected: SheetCounts | None,
          strict_read: Callable[[dict[int, tuple[str, str]], list[int]], list[ColumnRead]], name: str,
          ) -> tuple[list[ColumnRead], list[str]]:
    """The cells above the data (header and title rows) as the first rows showed them, then the count
    check: other numbers of boolean and text cells than the scan counted mean a silently coerced cell
    (which one, the counts do not tell). The columns that can hide one are read again, every cell but
    the dates reported: those of numbers, of booleans, and of text holding what a number or boolean
    would be rendered as."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from sheetdrop_step.convert_columns import column_letter, row_mask

    bools = texts = 0
    for col in columns:
        for r, cells in head.above.items():
            cell = cells.get(col.index)
            if cell is None or r in col.foreign or col.native is None or r >= len(col.native) or (
                    not col.native[r].is_valid):
                continue
            # Read as its column's type (a TRUE over numbers is 1.0): from here on the cell as it is.
            dtype = head.types.get(col.index, DEFAULT)[0]
            bools -= dtype == "boolean"
            texts -= dtype == "string"
            col.foreign[r] = cell
    seen = observed(columns, head.types)
    if expected is None or (expected.bools, expected.texts) == (seen[0] + bools, seen[1] + texts):
        return columns, []

    def suspect(col: ColumnRead) -> bool:
        dtype, native = head.types.get(col.index, DEFAULT)[0], col.native
        if native is None or dtype == "duration":
            return False
        return dtype != "string" or bool(pc.any(pc.match_substring_regex(native, r"^(-?\d|true$|false$)")).as_py())

    again = {c.index: c for c in columns}
    suspects = [c.index for c in columns if suspect(c)]
    size = max(1, STRICT_CELLS // max(1, len(columns[0].native) if columns and columns[0].native is not None else 1))
    for group in (suspects[i:i + size] for i in range(0, len(suspects), size)):
        strict = {i: ("duration", "duration" if head.types.get(i, DEFAULT)[1] == "duration" else "datetime")
                  for i in group}
        for col in strict_read(strict, group):
            # A second read as durations cannot tell a date from a duration; where the first reported one
            # with its subtype (a column of numbers or booleans), that cell is taken from the first.
            dates = {r: c for r, c in again[col.index].foreign.items() if c[0] in ("datetime", "duration")}
            if dates and col.native is not None:
                mask = row_mask(len(col.native), list(dates))
                col.native = pc.if_else(mask, pa.scalar(None, col.native.type), col.native)
                col.foreign.update(dates)
            col.foreign.update({r: c for r, c in again[col.index].foreign.items() if r in head.above})
            again[col.index] = col
    letters = ", ".join(column_letter(i) for i in suspects)
    return list(again.values()), [f"sheet {name!r}: columns {letters} read again with every cell checked: the first "
                                  f"{HEAD_ROWS} rows did not show every kind of cell they hold"]


def observed(columns: list[ColumnRead], types: dict[int, tuple[str, str]]) -> tuple[int, int]:
    """Booleans and text cells as read: the native values of boolean and text columns, and the cells
    reported as booleans or text anywhere."""
    bools = texts = 0
    for col in columns:
        held = len(col.native) - col.native.null_count if col.native is not None else 0
        dtype = types.get(col.index, DEFAULT)[0]
        bools += held if dtype == "boolean" else 0
        texts += held if dtype == "string" else 0
        for kind, _ in col.foreign.values():
            bools += kind == "bool"
            texts += kind == "text"
    return bools, texts


def xls_globals(path: Path) -> tuple[bool, bool]:
    """(whether calamine cannot be trusted with this .xls, its 1904 date system), from the workbook
    stream. calamine 0.36 reads the cached values of a chart embedded in a worksheet as cells and
    ends the sheet at the chart's end: any BIFF8 BOF record that does not start a sheet (found by
    its bytes; a false match only costs speed) sends the workbook to xlrd, as does BIFF5."""
    from xlrd import compdoc

    doc = compdoc.CompDoc(path.read_bytes(), logfile=open(os.devnull, "w"))  # noqa: SIM115 - gone with doc
    stream = doc.get_named_stream("Workbook") or doc.get_named_stream("Book") or b""
    bof = b"\x09\x08\x10\x00\x00\x06"
    if not stream.startswith(bof):
        return True, False
    starts, date1904, pos = {0}, False, 0
    while pos + 4 <= len(stream):
        kind, size = struct.unpack_from("<HH", stream, pos)
        if kind == 0x0085 and size >= 4:  # BOUNDSHEET: where a sheet's substream starts
            starts.add(struct.unpack_from("<I", stream, pos + 4)[0])
        elif kind == 0x0022 and size >= 2:  # DATEMODE
            date1904 = bool(struct.unpack_from("<H", stream, pos + 4)[0])
        elif kind == 0x000A:
            break
        pos += 4 + size
    at = stream.find(bof, 1)
    while at >= 0:
        if at not in starts:
            return True, date1904
        at = stream.find(bof, at + 1)
    return False, date1904


class XlsBook:
    """An .xls, read by xlrd where calamine cannot be trusted with it: xlrd keeps every cell's kind,
    skips the records of embedded charts and does not parse formulas it only has to show values of
    (calamine 0.36 panics on a formula record cut short)."""

    def __init__(self, path: Path) -> None:
        import xlrd

        self.xlrd = xlrd
        self.book = xlrd.open_workbook(str(path), formatting_info=True, on_demand=True,
                                       logfile=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the book
        self.date1904, self.names = bool(self.book.datemode), self.book.sheet_names()

    def read(self, task: Task) -> list[ColumnRead]:
        from sheetdrop_step.convert_columns import column_from_cells, serial_datetime

        x = self.xlrd
        sheet = self.book.sheet_by_index(task.index)
        if sheet.visibility:
            raise SheetSkipped(f"{'hidden' if sheet.visibility == 1 else 'veryHidden'} sheet")
        durations: dict[int, bool] = {}

        def cell(kind: int, value: Any, row: int, col: int) -> Cell | None:
            if kind == x.XL_CELL_TEXT:
                return "text", value
            if kind == x.XL_CELL_NUMBER:
                return "number", float(value)
            if kind == x.XL_CELL_BOOLEAN:
                return "bool", bool(value)
            if kind == x.XL_CELL_ERROR:
                return "error", x.error_text_from_code.get(value, "#ERROR")
            if kind == x.XL_CELL_DATE:
                xf = sheet.cell_xf_index(row, col)
                if xf not in durations:
                    fmt = self.book.format_map.get(self.book.xf_list[xf].format_key)
                    durations[xf] = bool(fmt and re.search(r"\[[hms]+\]", fmt.format_str, re.IGNORECASE))
                if durations[xf]:
                    return "duration", dt.timedelta(milliseconds=round(value * 86_400_000))
                return "datetime", serial_datetime(value, self.date1904)
            return None

        columns = [column_from_cells(c, [cell(k, v, r, c) for r, (k, v) in
                                         enumerate(zip(sheet.col_types(c), sheet.col_values(c), strict=True))])
                   for c in range(sheet.ncols)]
        self.book.unload_sheet(task.index)
        return columns
