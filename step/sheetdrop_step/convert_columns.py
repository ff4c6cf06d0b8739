"""The column rules: one column as read → the array that is written (pure pyarrow).

A column as read (:class:`ColumnRead`) holds the values of its native kind in one Arrow array and the
cells of other kinds by row (``foreign``). One kind over the column → typed (int64 when all numbers
are whole up to 2**53); several → text, each cell as Excel shows it (:func:`texts`), with the cells
that made it text named; error cells and empty text → null. A type the folder's options ask for, or a
majority kind kept (``rescue``), keeps the cells that fit it (``convert_hints``) and hands back the
others. README.md, "The converter", says the rules in prose; the table around the columns is
``convert_table``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sheetdrop_step.convert_header import is_value
from sheetdrop_step.convert_hints import convert, misfits

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


def _foreign_kind(cell: Cell, date1904: bool) -> str:
    if cell[0] == "datetime" and cell[1].date() == EPOCH[date1904].date():
        return "time"
    return cell[0]


@dataclass
class Finished:
    """One column as written: its array and type name, error cells, and what the type left out."""

    array: pa.Array
    type: str
    errors: int
    #: Data row → the cell as Excel shows it, for each cell that does not fit the column's type.
    rescued: dict[int, str] = field(default_factory=dict)
    #: A column made text by cells of several kinds: its majority kind and the cells of other kinds.
    mixed: Mixed | None = None


@dataclass
class Mixed:
    majority: str
    others: int  # cells not of the majority kind
    values: int  # cells holding a value
    first: list[tuple[int, str]]  # the first few of the others: (data row, text)


#: Target → the kind whose cells it keeps; "number" narrows to int64 when it can, "int" and "float" not.
FAMILY = {"int": "number", "float": "number", "date": "datetime"}
#: Ties for the majority go to the kind listed first.
_KIND_ORDER = ("number", "datetime", "time", "duration", "bool", "text")
EXAMPLES = 3


def finish_column(col: ColumnRead, date1904: bool, start: int = 0, end: int | None = None, want: str | None = None,
                  read_text: bool = False, rescue: bool = False) -> Finished:
    """The column rules on one column over the data rows [start, end). ``want``: the type the folder's
    options ask for (a ``read_options.ColumnType`` or a kind), ``read_text`` when text that reads as
    it fits it too; ``rescue``: a column of several kinds keeps its majority kind. Cells that do not
    fit a wanted or kept type are null there and listed in ``rescued``; with neither, several kinds
    make text, each cell as Excel shows it."""
    if end is None:
        end = len(col.native) if col.native is not None else max(col.foreign, default=-1) + 1
    native = col.native.slice(start, end - start) if col.native is not None else None
    foreign = {r - start: (_foreign_kind(cell, date1904), cell[1]) for r, cell in col.foreign.items()
               if start <= r < end}
    n_errors = sum(1 for cell in foreign.values() if cell[0] == "error")
    # Where a date column's values fall on day 0 (times of day): computed once, read three ways below.
    zero = _day_zero(native, date1904) if native is not None and col.kind == "datetime" else None
    counts = _kind_counts(native, col.kind, foreign, zero)
    size = end - start
    target = "text" if want == "string" else want
    if target is None and len(counts) == 1:
        target = next(iter(counts))
    elif target is None and counts and rescue:
        target = max(counts, key=lambda k: (counts[k], -_KIND_ORDER.index(k)))
    if target is None and not counts:
        return Finished(pa.nulls(size, pa.string()), "string", n_errors)
    if target is not None and target != "text":
        array, name, left = _conform(native, col.kind, foreign, size, target, date1904, zero,
                                     read_text and want is not None)
        rows = sorted(left)
        shown = cell_texts([left[r] for r in rows], date1904)
        return Finished(array, name, n_errors, dict(zip(rows, shown, strict=True)))
    # Text: each cell as Excel shows it.
    out = texts(native, col.kind or "text", date1904) if native is not None else pa.nulls(size, pa.string())
    if foreign:
        rows = sorted(foreign)
        shown = pa.array(cell_texts([foreign[r] for r in rows], date1904), pa.string())
        out = pc.replace_with_mask(out, row_mask(size, rows), shown)
    mixed = _mixed(native, col.kind, foreign, counts, out, zero) if target is None else None
    return Finished(_typed(out, "text", "text", size), "string", n_errors, mixed=mixed)


def _kind_counts(native: pa.Array | None, kind: str | None, foreign: dict[int, Cell], zero: pa.Array | None,
                 ) -> dict[str, int]:
    """Cells holding a value, by kind (a date column's times of day, on day 0, counted as times)."""
    counts: dict[str, int] = {}
    if native is not None and kind is not None and native.null_count < len(native):
        if kind == "text":
            counts["text"] = pc.sum(pc.not_equal(native, "")).as_py() or 0
        elif zero is not None:
            counts["time"] = pc.sum(zero).as_py() or 0
            counts["datetime"] = len(native) - native.null_count - counts["time"]
        else:
            counts[kind] = len(native) - native.null_count
    for cell in foreign.values():
        if is_value(cell):
            counts[cell[0]] = counts.get(cell[0], 0) + 1
    return {k: n for k, n in counts.items() if n}


def _day_zero(native: pa.Array, date1904: bool) -> pa.Array:
    epoch = pa.scalar(EPOCH[date1904], pa.timestamp("ms")).cast(native.type)
    return pc.equal(pc.floor_temporal(native, unit="day"), epoch)


def _mixed(native: pa.Array | None, kind: str | None, foreign: dict[int, Cell], counts: dict[str, int],
           shown: pa.Array, zero: pa.Array | None) -> Mixed:
    """Which cells made a column text: those not of its majority kind, the first few with their text."""
    majority = max(counts, key=lambda k: (counts[k], -_KIND_ORDER.index(k)))
    rows = [r for r, cell in sorted(foreign.items()) if is_value(cell) and cell[0] != majority][:EXAMPLES]
    if native is not None and kind is not None:
        if kind == "text":
            odd = pc.fill_null(pc.not_equal(native, ""), False) if majority != "text" else None
        elif zero is not None:  # dates and times of day share the native array
            on_zero = pc.fill_null(zero, False)
            odd = {"time": pc.and_(pc.is_valid(native), pc.invert(on_zero)), "datetime": on_zero}.get(
                majority, pc.is_valid(native))
        else:
            odd = pc.is_valid(native) if kind != majority else None
        if odd is not None:
            rows = sorted(rows + pc.indices_nonzero(odd).slice(0, EXAMPLES).to_pylist())[:EXAMPLES]
    return Mixed(majority, sum(counts.values()) - counts[majority], sum(counts.values()),
                 [(r, shown[r].as_py()) for r in rows])


def _conform(native: pa.Array | None, native_kind: str | None, foreign: dict[int, Cell], size: int, target: str,
             date1904: bool, zero: pa.Array | None, read_text: bool) -> tuple[pa.Array, str, dict[int, Cell]]:
    """The column as ``target``: native values of its kind as they are, every other cell converted when
    it fits (``convert_hints.convert``), else left out: (array, type name, row → cell left out)."""
    family = FAMILY.get(target, target)
    if native is not None and native_kind in (family, "datetime" if family == "time" else family):
        values = _typed(native, native_kind, family, size)
        odd = misfits(native, native_kind, target, zero)
        candidates = {r: (native_kind, v) for r, v in odd.items()}
        if odd:
            values = pc.if_else(row_mask(size, list(odd)), pa.scalar(None, values.type), values)
    else:
        values = pa.nulls(size, _ARROW_TYPES[family])
        candidates = {}
        if native is not None and native_kind is not None:
            held = native.to_pylist()
            candidates = {r: (native_kind, v) for r, v in enumerate(held) if v is not None and v != ""}
    candidates.update({r: cell for r, cell in foreign.items() if is_value(cell)})
    placed: dict[int, Any] = {}
    left: dict[int, Cell] = {}
    for r, cell in candidates.items():
        value = convert(_split_time(cell, date1904), target, read_text)
        if value is None:
            left[r] = cell
        else:
            placed[r] = value
    if placed:  # cells of this type that came back on their own (a column read under another type)
        listed = values.to_pylist()
        kind = values.type
        if target == "int":  # as Python ints: a whole number from text may need all 64 bits
            listed, kind = [None if v is None else int(v) for v in listed], pa.int64()
        for r, v in placed.items():
            listed[r] = v
        values = pa.array(listed, kind)
    array, name = _narrow(values, target)
    return array, name, left


def _split_time(cell: Cell, date1904: bool) -> Cell:
    return (_foreign_kind(cell, date1904), cell[1]) if cell[0] == "datetime" else cell


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
    if kind == "int":
        return values.cast(pa.int64()), "int64"
    if kind == "date":
        return values.cast(pa.date32()), "date"
    if kind != "number":
        return values, {"text": "string", "datetime": "timestamp", "float": "float64"}.get(kind, kind)
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
