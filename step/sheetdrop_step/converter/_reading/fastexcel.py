"""Reading a sheet with fastexcel, into ``ColumnRead`` columns (in the reader process).

fastexcel parses a sheet straight into Arrow, reporting each cell it cannot convert to its column's
type with its exact original (:func:`original`) — but not every one (``tests/test_convert_cell_kinds.py``
pins down which it coerces silently). So each column's type is chosen before the parse from the first
rows (``head.choose_types``, with :func:`dtype_for` here) such that the rest comes back natively or
reported, and what the first rows did not show is caught by the count check (``counts.check``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from sheetdrop_contract.column_types import AUTO
from sheetdrop_step.converter._columns.cells import EPOCH, LAST_DATE_MS, MS_PER_DAY, Cell, ColumnRead, date_cell
from sheetdrop_step.converter._reading.task import NeedsPatch, SheetSkipped, Task
from sheetdrop_step.converter._safety.guard import Inspection

#: The fastexcel releases :func:`original` reads the error details of, from the first up to (not
#: including) the second: it parses the text of Rust's ``Debug`` of calamine's cell value, which no
#: release promises to keep. step/requirements.txt pins the same range; a test fails when the
#: installed fastexcel is outside it.
FASTEXCEL_VERSIONS = ((0, 21), (0, 22))
MAX_COLUMNS = 16_384
#: The dtypes under which fastexcel reports (as errors, with their originals) every cell but a date,
#: dates coming back as serial days in milliseconds, their subtype (date or duration) lost; and
#: every date, with its subtype.
ALL_BUT_DATES, DATES = "duration", "float"
DEFAULT = (AUTO["number"].reader, "number")  # a column with nothing in the first rows
#: The native kind of a column read for a mix of numbers, text or booleans: dates (were there any; none
#: in its first rows), else its numbers.
MIXED = "mixed"
_DEFAULT_DTYPES = dict.fromkeys(range(MAX_COLUMNS), DEFAULT[0])  # every column, copied per read
_ISO_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?")
_ISO_DURATION = re.compile(r"P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$")
#: A detail's value, for :func:`originals`: its variant's name and what its parentheses hold.
_DETAIL = r"but got '(?P<name>[A-Za-z]+)\((?P<body>.*)\)'$"
_EXCEL_DATETIME = re.compile(r"value: ([^,]+), datetime_type: (\w+), is_1904: (\w+)")
_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|.)")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}


def dtype_for(kinds: set[str]) -> tuple[str, str]:
    """The dtype to read a column with whose first rows hold these kinds, and the kind of its native
    values: one kind natively, as its type says (``column_types``); dates next to durations → float
    (each reported with its subtype); any other mix → duration (all but the dates reported), a mix
    of neither dates nor durations :data:`MIXED` (its numbers are then its native values, ``load``)."""
    if len(kinds) == 1:
        kind = next(iter(kinds))
        return AUTO[kind].reader, kind
    if {"datetime", "duration"} <= kinds:
        return DATES, "number"
    if kinds & {"datetime", "duration"}:
        return ALL_BUT_DATES, "duration" if "duration" in kinds else "datetime"
    return ALL_BUT_DATES, MIXED


def original(detail: str, date1904: bool) -> Cell:
    """The cell fastexcel could not convert, from its error detail (Rust's Debug of calamine's value;
    :data:`FASTEXCEL_VERSIONS`)."""
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
        return "datetime", iso_datetime(text, date1904)
    if name == "DateTime":
        m = _EXCEL_DATETIME.search(body)
        if m:
            days = float(m.group(1))
            if m.group(2) == "TimeDelta":
                return "duration", dt.timedelta(milliseconds=round(days * MS_PER_DAY))
            return date_cell(days, date1904)  # the workbook's system, as the guard read it
    return "error", body or name


class Reported:
    """The cells fastexcel reported in one read (``to_arrow_with_errors``), parsed at once: numbers and
    strings without an escape (most of a column of numbers and codes, where every cell is reported) in
    Arrow, any other one by :func:`original`."""

    def __init__(self, errors: list[Any], date1904: bool) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.date1904 = date1904
        self.none = not errors  # (most reads: nothing below is computed for them)
        if self.none:
            return
        self.details = [err.detail for err in errors]
        where = [err.offset_position for err in errors]
        self.rows = pa.array([r for r, _ in where], pa.int64())
        self.columns = pa.array([c for _, c in where], pa.int64())
        found = pc.extract_regex(pa.array(self.details, pa.string()), _DETAIL)
        names, bodies = found.field("name"), found.field("body")
        self.is_number = pc.fill_null(pc.is_in(names, pa.array(["Float", "Int"])), False)
        self.is_text = pc.fill_null(pc.and_(pc.equal(names, "String"), pc.invert(pc.match_substring(bodies, "\\"))),
                                    False)
        self.numbers = pc.cast(pc.if_else(self.is_number, bodies, pa.scalar(None, pa.string())), pa.float64())
        self.texts = pc.utf8_slice_codeunits(bodies, 1, -1)

    def of(self, column: int) -> Any:
        """The positions of a column's reported cells (in row order: fastexcel reports row by row)."""
        import pyarrow.compute as pc

        return () if self.none else pc.indices_nonzero(pc.equal(self.columns, column))

    def cells(self, at: Any, first: int) -> dict[int, Cell]:
        """The cells at these positions, by row (``first`` added)."""
        import pyarrow.compute as pc

        if not len(at):
            return {}
        rows = pc.take(self.rows, at).to_pylist()
        numbers, texts = pc.take(self.numbers, at).to_pylist(), pc.take(self.texts, at).to_pylist()
        is_number, is_text = pc.take(self.is_number, at).to_pylist(), pc.take(self.is_text, at).to_pylist()
        return {first + row: ("number", number) if a_number else ("text", text) if a_text else
                original(self.details[i], self.date1904)
                for i, row, number, text, a_number, a_text in zip(at.to_pylist(), rows, numbers, texts, is_number,
                                                                  is_text, strict=True)}


def iso_datetime(text: str, date1904: bool) -> dt.datetime:
    """An ISO 8601 date cell (``t="d"``, openpyxl's way): a date, a date and time, or a time of day alone
    (``10:10:10``), which is a date on the date system's day 0, as a serial below 1 is."""
    if _ISO_TIME.fullmatch(text):
        return dt.datetime.combine(EPOCH[date1904].date(), dt.time.fromisoformat(text))
    return dt.datetime.fromisoformat(text)


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


class FastexcelBook:
    """One thread's fastexcel reader on a package (a reader is not shared between threads)."""

    def __init__(self, path: Path, inspection: Inspection, include_hidden: bool = True) -> None:
        import fastexcel

        self.inspection, self.include_hidden = inspection, include_hidden
        self.reader = fastexcel.read_excel(str(path))

    def head_rows(self, task: Task, first: int, count: int) -> tuple[list[list[Any]], int]:
        """The values of ``count`` rows from row ``first``, with their kinds, from two small reads under
        types that report every cell but dates (``duration``) and every date with its subtype (``float``)."""
        strict = self.load(task, {}, count, ALL_BUT_DATES, first=first)[0]
        dates = {c.index: c.foreign for c in self.load(task, {}, count, DATES, first=first)[0]}
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
        and its number of rows; from its ``first`` row (in a piece, :class:`pieces.Piece`,
        which ``lacks_before`` that row: one there is out of order, a ValueError)."""
        dtypes = every or {**_DEFAULT_DTYPES, **{i: t[0] for i, t in types.items()}}
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
        import pyarrow.compute as pc

        from sheetdrop_step.converter._columns.arrays import row_mask, serial_timestamps

        batch, errors = sheet.to_arrow_with_errors()
        infos = sheet.selected_columns
        date1904 = self.inspection.date1904
        reported = Reported(errors.errors if errors is not None else [], date1904)
        columns, far = [], {}
        for j, info in enumerate(infos):
            dtype, kind = (every, None) if every else types.get(info.absolute_index, DEFAULT)
            native, at = batch.column(j), reported.of(info.index)  # (error positions count the sheet's columns)
            if dtype == ALL_BUT_DATES and kind in ("datetime", MIXED):
                native = serial_timestamps(native.cast(pa.int64()), date1904)
                past = pc.greater(native.cast(pa.int64()), LAST_DATE_MS)
                if pc.any(past).as_py():  # no date that far (nor its milliseconds, saturated): read again
                    far[info.absolute_index] = [first + r for r in pc.indices_nonzero(past).to_pylist()]
                    native = pc.if_else(past, pa.scalar(None, native.type), native)
            if kind == MIXED and native.null_count == len(native):
                # No date in a column read for its mix (numbers and codes): its reported numbers are its
                # native values, as a read as numbers would give them, without a Python object each.
                values = pa.nulls(len(native), pa.float64())
                if len(at):
                    numbers = pc.filter(at, pc.take(reported.is_number, at))
                    where = pc.take(reported.rows, numbers).to_pylist()
                    values = pc.replace_with_mask(values, row_mask(len(native), where),
                                                  pc.take(reported.numbers, numbers))
                    at = pc.filter(at, pc.invert(pc.take(reported.is_number, at)))
                native, kind = values, "number"
            elif kind == MIXED:
                kind = "datetime"
            columns.append(ColumnRead(info.absolute_index, native, kind, reported.cells(at, first)))
        if far:
            # Read as numbers, every date is reported with its serial number: date_cell keeps those past
            # the last date as numbers.
            again = {c.index: c for c in self.load(task, {}, rows, DATES, only=list(far), first=first)[0]}
            for col in columns:
                for r in far.get(col.index, ()):
                    read = again[col.index]
                    col.foreign[r] = read.foreign.get(r) or ("number", read.native[r - first].as_py())
        return columns, batch.num_rows
