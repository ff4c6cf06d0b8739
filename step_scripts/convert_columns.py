"""The column rules: a sheet as read → the table that is written (pure pyarrow).

A column as read (:class:`ColumnRead`) holds the values of its native kind in one Arrow array and the
cells of other kinds by row (``foreign``). One kind over the column → typed (int64 when all numbers
are whole up to 2**53); several → text, each cell as Excel shows it (:func:`texts`); error cells and
empty text → null. README.md, "The converter", says the rules in prose.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

MAX_EXACT_INT = 2**53
_SPARK_UNSAFE = " ,;{}()\n\t\r=."
#: Day 0 of each date system, as the reader maps serial numbers (1900: serial 0 is 1899-12-31).
EPOCH = {False: dt.datetime(1899, 12, 31), True: dt.datetime(1904, 1, 1)}
_MS_PER_DAY = 86_400_000
_POWERS = pa.array([float(10**i) for i in range(23)])  # exact as doubles
_ARROW_TYPES = {"number": pa.float64(), "text": pa.string(), "bool": pa.bool_(), "datetime": pa.timestamp("us"),
                "time": pa.time64("us"), "duration": pa.duration("us")}

Cell = tuple[str, Any]  # (kind, value): number float, text str, bool, datetime, duration timedelta, error str


@dataclass
class ColumnRead:
    index: int  # absolute column index, 0 = A
    native: pa.Array | None  # values of the native kind, null elsewhere (one entry per row read)
    kind: str | None  # the native kind: number | text | bool | datetime | duration
    foreign: dict[int, Cell] = field(default_factory=dict)  # row → a cell of another kind


@dataclass
class SheetTable:
    table: pa.Table
    types: dict[str, str]
    nulls: dict[str, int]
    errors: dict[str, int]


def serial_datetime(days: float, date1904: bool) -> dt.datetime:
    """An Excel serial number as the reader maps it (the 1900 system's phantom 1900-02-29 skipped)."""
    ms = round(days * _MS_PER_DAY)
    if not date1904 and ms >= 60 * _MS_PER_DAY:
        ms -= _MS_PER_DAY
    return EPOCH[date1904] + dt.timedelta(milliseconds=ms)


def serial_timestamps(ms: pa.Array, date1904: bool) -> pa.Array:
    """:func:`serial_datetime` on a column of serial numbers in milliseconds (int64)."""
    if not date1904:
        late = pc.greater_equal(ms, 60 * _MS_PER_DAY)
        ms = pc.if_else(late, pc.subtract(ms, _MS_PER_DAY), ms)
    epoch = int(EPOCH[date1904].replace(tzinfo=dt.UTC).timestamp() * 1000)
    return pc.add(ms, epoch).cast(pa.timestamp("ms"))


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def texts(values: pa.Array, kind: str, date1904: bool) -> pa.Array:
    """Cells of one kind as Excel shows them, as text (vectorized; null stays null)."""
    if kind == "number":
        # The shortest text that reads back as the same number; past 15 significant digits (Excel's
        # precision) the number nearest at 15. Never -0; exponents as Excel writes them (1E+20).
        out = at_15_digits(values.cast(pa.float64())).cast(pa.string())
        out = pc.replace_substring(out, "e", "E")
        return pc.if_else(pc.equal(out, "-0"), "0", out)
    if kind == "bool":
        return pc.if_else(values, "TRUE", "FALSE")
    if kind == "datetime":  # and times of day: on day 0
        stamps = pc.round_temporal(values.cast(pa.timestamp("ms")), unit="second").cast(pa.timestamp("s"))
        day = pc.floor_temporal(stamps, unit="day")
        epoch = pa.scalar(EPOCH[date1904], pa.timestamp("s"))
        return pc.if_else(pc.equal(day, epoch), pc.strftime(stamps, "%H:%M:%S"), pc.if_else(
            pc.equal(stamps, day), pc.strftime(stamps, "%Y-%m-%d"), pc.strftime(stamps, "%Y-%m-%d %H:%M:%S")))
    if kind == "duration":
        return pa.array([None if v is None else _duration_text(v) for v in values.to_pylist()], pa.string())
    return values.cast(pa.string())


def at_15_digits(values: pa.Array) -> pa.Array:
    """Numbers rounded to 15 significant digits, each as ``float("%.15g" % x)``: r = round(x * 10**k)
    with 15 digits before the point, then r / 10**k. With 10**k exact (|k| <= 22) each step rounds
    once: x * 10**k is off by half its last bit at most, and a half (n + 0.5) lies on the same grid of
    bits, so r is right unless the product is exactly a half; r / 10**k is the double nearest r's
    decimal. Exact halves, |k| > 22 and a misjudged exponent (|r| outside (10**14, 10**15]) go through
    Python's correctly rounded formatting; zero and inf stay as they are."""
    plain = pc.or_(pc.equal(values, 0), pc.invert(pc.is_finite(values)))
    k = pc.subtract(14, pc.floor(pc.log10(pc.if_else(plain, 1.0, pc.abs(values)))).cast(pa.int64()))
    scale = pc.take(_POWERS, pc.min_element_wise(pc.abs(k), len(_POWERS) - 1))
    up = pc.greater_equal(k, 0)
    scaled = pc.if_else(up, pc.multiply(values, scale), pc.divide(values, scale))
    r = pc.round(scaled)
    near_half = pc.equal(pc.subtract(scaled, pc.floor(scaled)), 0.5)
    size = pc.abs(r)
    unsure = pc.and_not(pc.or_(pc.or_(near_half, pc.greater(pc.abs(k), len(_POWERS) - 1)),
                               pc.or_(pc.less_equal(size, 1e14), pc.greater(size, 1e15))), plain)
    out = pc.if_else(plain, values, pc.if_else(up, pc.divide(r, scale), pc.multiply(r, scale)))
    if pc.any(unsure).as_py():
        exact = [float(f"{x:.15g}") for x in values.filter(unsure).to_pylist()]
        out = pc.replace_with_mask(out, unsure, pa.array(exact, pa.float64()))
    return out


def _duration_text(value: dt.timedelta) -> str:
    seconds = round(value.total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def cell_texts(cells: list[Cell], date1904: bool) -> list[str | None]:
    """Single cells as :func:`texts` shows them (a time of day is a date on day 0), error cells None."""
    cells = [("datetime", v) if k == "time" else (k, v) for k, v in cells]
    out: list[str | None] = [None] * len(cells)
    for kind in {k for k, _ in cells} - {"error"}:
        at = [i for i, (k, _) in enumerate(cells) if k == kind]
        values = pa.array([cells[i][1] for i in at], pa.timestamp("ms") if kind == "datetime" else _ARROW_TYPES[kind])
        for i, text in zip(at, texts(values, kind, date1904).to_pylist(), strict=True):
            out[i] = text or None
    return out


def safe_name(raw: str | None, absolute_index: int) -> str:
    """Trimmed, and without the characters Spark refuses in parquet column names."""
    name = " ".join((raw or "").split())
    name = "".join("_" if ch in _SPARK_UNSAFE or ord(ch) < 32 else ch for ch in name)
    name = "_".join(part for part in name.split("_") if part) if name.strip("_") else ""
    return name or f"column_{column_letter(absolute_index)}"


def unique_names(names: list[str]) -> list[str]:
    # Spark resolves columns case-insensitively, so "Amount" and "amount" collide.
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 0
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def _present(col: ColumnRead) -> pa.Array | None:
    """Where the native array holds a value (non-empty text for text)."""
    if col.native is None:
        return None
    if col.kind == "text":
        return pc.fill_null(pc.not_equal(col.native, ""), False)
    return pc.is_valid(col.native)


def _rows(mask: pa.Array | None) -> list[int]:
    """The first and the last row of a mask that are set ([] when none is)."""
    if mask is None or not pc.any(mask).as_py():
        return []
    return [pc.index(mask, True).as_py(), pc.indices_nonzero(mask)[-1].as_py()]


def _is_value(cell: Cell) -> bool:
    return cell[0] != "error" and cell != ("text", "")


def header_row(columns: list[ColumnRead]) -> int | None:
    """The first row holding a value that is not empty text (None: no such row)."""
    rows = [r for c in columns for r in _rows(_present(c))[:1]]
    rows += [r for c in columns for r, cell in c.foreign.items() if _is_value(cell)]
    return min(rows, default=None)


def build_table(columns: list[ColumnRead], date1904: bool, threads: int = 1) -> SheetTable | None:
    """Header, trimming and the column rules on a sheet as read; None when no cell holds a value."""
    header = header_row(columns)
    if header is None:
        return None
    present = [_present(c) for c in columns]
    # Error cells occupy their row (they are counted); empty text does not.
    end = 1 + max([r for m in present for r in _rows(m)[1:]] + [
        r for c in columns for r, cell in c.foreign.items() if cell != ("text", "")])
    names: list[str | None] = []
    keep: list[bool] = []
    for col, mask in zip(columns, present, strict=True):
        cell = col.foreign.get(header)
        if cell is None and col.native is not None and col.native[header].is_valid:
            cell = (col.kind or "text", col.native[header].as_py())
        names.append(cell_texts([cell], date1904)[0] if cell else None)
        occupied = any(header < r < end and cell != ("text", "") for r, cell in col.foreign.items()) or (
            mask is not None and pc.any(mask.slice(header + 1, end - header - 1)).as_py())
        keep.append(bool(names[-1]) or bool(occupied))
    first, last = keep.index(True), len(keep) - 1 - keep[::-1].index(True)
    final = unique_names([safe_name(names[i], columns[i].index) for i in range(first, last + 1)])
    # Columns side by side: pyarrow's kernels run without the GIL.
    with ThreadPoolExecutor(max(1, threads), "sheetdrop-column") as pool:
        done = list(pool.map(lambda col: finish_column(col, date1904, header + 1, end), columns[first:last + 1]))
    return SheetTable(pa.Table.from_arrays([a for a, _, _ in done], names=final),
                      {n: kind for n, (_, kind, _) in zip(final, done, strict=True)},
                      {n: a.null_count for n, (a, _, _) in zip(final, done, strict=True)},
                      {n: e for n, (_, _, e) in zip(final, done, strict=True)})


def _kinds(native: pa.Array | None, kind: str | None, date1904: bool) -> set[str]:
    """The kinds the native values hold: a date column may hold times of day (day 0) too."""
    if native is None or kind is None or native.null_count == len(native):
        return set()
    if kind == "text":
        return {"text"} if pc.any(pc.fill_null(pc.not_equal(native, ""), False)).as_py() else set()
    if kind != "datetime":
        return {kind}
    epoch = pa.scalar(EPOCH[date1904], pa.timestamp("ms")).cast(native.type)
    day_zero = pc.equal(pc.floor_temporal(native, unit="day"), epoch)
    return {"time" if at_zero else "datetime" for at_zero in pc.unique(day_zero.drop_null()).to_pylist()}


def _foreign_kind(cell: Cell, date1904: bool) -> str:
    if cell[0] == "datetime" and cell[1].date() == EPOCH[date1904].date():
        return "time"
    return cell[0]


def finish_column(col: ColumnRead, date1904: bool, start: int = 0, end: int | None = None,
                  ) -> tuple[pa.Array, str, int]:
    """The column rules on one column over the data rows [start, end): (array, type name, error cells)."""
    if end is None:
        end = len(col.native) if col.native is not None else max(col.foreign, default=-1) + 1
    native = col.native.slice(start, end - start) if col.native is not None else None
    foreign = {r - start: (_foreign_kind(cell, date1904), cell[1]) for r, cell in col.foreign.items()
               if start <= r < end}
    n_errors = sum(1 for cell in foreign.values() if cell[0] == "error")
    kinds = _kinds(native, col.kind, date1904) | {c[0] for c in foreign.values() if _is_value(c)}
    size = end - start
    if not kinds:
        return pa.nulls(size, pa.string()), "string", n_errors
    if len(kinds) == 1:
        kind = next(iter(kinds))
        values = _typed(native, col.kind, kind, size)
        same = {r: v for r, (k, v) in foreign.items() if k == kind}
        if same:  # cells of this kind that came back on their own (a column read under another type)
            listed = values.to_pylist()
            for r, v in same.items():
                listed[r] = v.time() if kind == "time" else v
            values = pa.array(listed, values.type)
        array, name = _narrow(values, kind)
        return array, name, n_errors
    # Several kinds: each cell as Excel shows it.
    out = texts(native, col.kind or "text", date1904) if native is not None else pa.nulls(size, pa.string())
    if foreign:
        rows = sorted(foreign)
        shown = pa.array(cell_texts([foreign[r] for r in rows], date1904), pa.string())
        out = pc.replace_with_mask(out, row_mask(size, rows), shown)
    return _typed(out, "text", "text", size), "string", n_errors


def row_mask(size: int, rows: list[int]) -> pa.Array:
    """A boolean array of ``size`` set at ``rows`` (built in C: a column has ~100k rows, few set)."""
    flags = bytearray(size)
    for r in rows:
        flags[r] = 1
    return pa.Array.from_buffers(pa.uint8(), size, [None, pa.py_buffer(flags)]).cast(pa.bool_())


def _typed(native: pa.Array | None, native_kind: str | None, kind: str, size: int) -> pa.Array:
    if native is None or native_kind not in (kind, "datetime" if kind == "time" else kind):
        return pa.nulls(size, _ARROW_TYPES[kind])
    if kind == "text":
        # A copy starting at offset 0: pyarrow 23 (the step's AzureML environment) builds an invalid
        # array from if_else on a sliced string array.
        native = pa.concat_arrays([native.cast(pa.string())])
        return pc.if_else(pc.equal(native, ""), pa.scalar(None, pa.string()), native)
    if kind == "time":
        micros = pc.subtract(native.cast(pa.timestamp("us")).cast(pa.int64()),
                             pc.floor_temporal(native, unit="day").cast(pa.timestamp("us")).cast(pa.int64()))
        return micros.cast(pa.time64("us"))
    return native.cast(_ARROW_TYPES[kind])


def _narrow(values: pa.Array, kind: str) -> tuple[pa.Array, str]:
    if kind != "number":
        return values, {"text": "string", "datetime": "timestamp"}.get(kind, kind)
    valid = values.drop_null()
    if len(valid) and pc.all(pc.equal(pc.floor(valid), valid)).as_py() and (
            pc.max(pc.abs(valid)).as_py() <= MAX_EXACT_INT):
        return values.cast(pa.int64()), "int64"
    return values, "float64"


def column_from_cells(index: int, cells: list[Cell | None]) -> ColumnRead:
    """A column from cells read one by one: native when its values are of one kind."""
    kinds = {c[0] for c in cells if c is not None and c[0] != "error"}
    if len(kinds) != 1:
        return ColumnRead(index, None, None, {r: c for r, c in enumerate(cells) if c is not None})
    kind = kinds.pop()
    native = pa.array([c[1] if c is not None and c[0] == kind else None for c in cells],
                      pa.timestamp("ms") if kind == "datetime" else _ARROW_TYPES[kind])
    return ColumnRead(index, native, kind, {r: c for r, c in enumerate(cells) if c is not None and c[0] == "error"})
