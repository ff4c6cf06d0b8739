"""The column rules: one column as read → the array that is written (pure pyarrow).

A column as read (``cells.ColumnRead``) holds the values of its native kind in one Arrow array and the
cells of other kinds by row (``foreign``). One kind over the column → typed (int64 when all numbers
are whole and int64 holds them, text when one is whole beyond it); several → text, each cell as Excel
shows it (``text.texts``), with the cells that made it text named; error cells and empty text → null.
A type the folder's options ask for, or a majority kind kept (``rescue``), keeps the cells that fit it
(``hints``) and hands back the others.
README.md, "The converter", says the rules in prose; the table around the columns is ``_table.build``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sheetdrop_contract.column_types import AUTO, BY_OPTION, TEXT, ColumnType
from sheetdrop_step.converter._columns.arrays import arrow_type, row_mask
from sheetdrop_step.converter._columns.cells import EPOCH, Cell, ColumnRead
from sheetdrop_step.converter._columns.hints import FITS, INT64_BOUND, convert, fits_int64, misfits
from sheetdrop_step.converter._columns.text import cell_texts, texts
from sheetdrop_step.converter._table.header import is_value


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
    #: A column of whole numbers made text because one is beyond int64: the largest, as shown.
    beyond: str | None = None


@dataclass
class Mixed:
    majority: str
    others: int  # cells not of the majority kind
    values: int  # cells holding a value
    first: list[tuple[int, str]]  # the first few of the others: (data row, text)


#: Ties for the majority go to the kind listed first.
_KIND_ORDER = ("number", "datetime", "time", "duration", "bool", "text")
EXAMPLES = 3


def finish_column(col: ColumnRead, date1904: bool, start: int = 0, end: int | None = None,
                  want: ColumnType | None = None, read_text: bool = False, rescue: bool = False,
                  exact: dict[int, int] | None = None) -> Finished:
    """The column rules on one column over the data rows [start, end). ``want``: the type the folder's
    options ask for or the previous version has, ``read_text`` when text that reads as it fits it too;
    ``rescue``: a column of several kinds keeps its majority kind. Cells that do not fit a wanted or
    kept type are null there and listed in ``rescued``; with neither, several kinds make text, each
    cell as Excel shows it. A type from the column's own cells (one kind, or the majority kept) is its
    kind's type, numbers narrowed to int64 when every one is whole and int64 holds it (``exact``: row →
    the digits of a whole number a double changed, past 2**53), text when one is whole beyond int64; a
    wanted one is as it is."""
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
    target = want
    if target is None and len(counts) == 1:
        target = AUTO[next(iter(counts))]
    elif target is None and counts and rescue:
        target = AUTO[max(counts, key=lambda k: (counts[k], -_KIND_ORDER.index(k)))]
    if target is None and not counts:
        return Finished(pa.nulls(size, arrow_type(TEXT)), TEXT.name, n_errors)
    digits = {r - start: v for r, v in (exact or {}).items() if start <= r < end}
    if target is not None and target.kind != TEXT.kind:
        array, left = _conform(native, col.kind, foreign, size, target, date1904, zero,
                               read_text and want is not None)
        if want is None:
            narrowed, name = _narrowed(array, target, digits)
            if narrowed is None:  # whole numbers beyond int64: as Excel shows them
                biggest = pc.max(pc.abs(array)).as_py()
                return Finished(_typed(texts(array, "number", date1904), TEXT.kind, TEXT.kind, size), name,
                                n_errors, beyond=texts(pa.array([biggest]), "number", date1904)[0].as_py())
            array = narrowed
        else:
            array, name = array.cast(arrow_type(target)), target.name
            if name == BY_OPTION["int"].name and digits:
                array = _exactly(array, {r: v for r, v in digits.items() if fits_int64(v)})
        rows = sorted(left)
        shown = cell_texts([left[r] for r in rows], date1904)
        return Finished(array, name, n_errors, dict(zip(rows, shown, strict=True)))
    # Text: each cell as Excel shows it.
    out = texts(native, col.kind or TEXT.kind, date1904) if native is not None else pa.nulls(size, pa.string())
    if foreign:
        rows = sorted(foreign)
        shown = pa.array(cell_texts([foreign[r] for r in rows], date1904), pa.string())
        out = pc.replace_with_mask(out, row_mask(size, rows), shown)
    mixed = _mixed(native, col.kind, foreign, counts, out, zero) if target is None else None
    return Finished(_typed(out, TEXT.kind, TEXT.kind, size), TEXT.name, n_errors, mixed=mixed)


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


def _conform(native: pa.Array | None, native_kind: str | None, foreign: dict[int, Cell], size: int,
             target: ColumnType, date1904: bool, zero: pa.Array | None, read_text: bool,
             ) -> tuple[pa.Array, dict[int, Cell]]:
    """The column as ``target``'s kind: native values of its kind as they are, every other cell
    converted when it fits (``hints.convert``), else left out: (array, row → cell left out)."""
    kind = target.kind
    if native is not None and native_kind in (kind, _native(kind)):
        values = _typed(native, native_kind, kind, size)
        odd = misfits(native, native_kind, target, zero)
        candidates = {r: (native_kind, v) for r, v in odd.items()}
        if odd:
            values = pc.if_else(row_mask(size, list(odd)), pa.scalar(None, values.type), values)
    else:
        values = pa.nulls(size, arrow_type(AUTO[kind]))
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
        held_as = values.type
        if kind == "number" and arrow_type(target) != held_as:
            # A number type a double cannot hold exactly (int64: a whole number from text may need all
            # 64 bits) is built in its own type, each native value as the type's rule holds it.
            listed, held_as = [None if v is None else FITS[target.option](v) for v in listed], arrow_type(target)
        for r, v in placed.items():
            listed[r] = v
        values = pa.array(listed, held_as)
    return values, left


def _split_time(cell: Cell, date1904: bool) -> Cell:
    return (_foreign_kind(cell, date1904), cell[1]) if cell[0] == "datetime" else cell


def _native(kind: str) -> str:
    """The kind the readers give a kind's cells as: a time of day is a date on day 0."""
    return "datetime" if kind == "time" else kind


def _typed(native: pa.Array | None, native_kind: str | None, kind: str, size: int) -> pa.Array:
    """Native values of ``kind`` (as read) in its type's Arrow type; nulls for another kind's."""
    arrow = arrow_type(AUTO[kind])
    if native is None or native_kind not in (kind, _native(kind)):
        return pa.nulls(size, arrow)
    if kind == TEXT.kind:
        # A copy starting at offset 0: pyarrow 23 (the step's AzureML environment) builds an invalid
        # array from if_else on a sliced string array.
        native = pa.concat_arrays([native.cast(arrow)])
        return pc.if_else(pc.equal(native, ""), pa.scalar(None, arrow), native)
    if kind == "time":  # the time since its day's midnight
        stamps = pa.timestamp(arrow.unit)
        since = pc.subtract(native.cast(stamps).cast(pa.int64()),
                            pc.floor_temporal(native, unit="day").cast(stamps).cast(pa.int64()))
        return since.cast(arrow)
    return native.cast(arrow)


def _narrowed(values: pa.Array, target: ColumnType, exact: dict[int, int]) -> tuple[pa.Array | None, str]:
    """A type from the column's own cells: numbers as int64 when every one is whole and int64 holds it,
    each as the sheet wrote it (``exact``: the digits of those a double changed, past 2**53); whole
    numbers beyond int64: None and text (shown as Excel shows them: no type holds them all exactly)."""
    whole = BY_OPTION["int"]
    if target.kind == whole.kind:
        valid = values.drop_null()
        if len(valid) and pc.all(pc.equal(pc.floor(valid), valid)).as_py():
            # Outside int64 as doubles: each must be a whole number written with its digits, which int64 holds.
            outside = pc.fill_null(pc.or_(pc.greater_equal(values, INT64_BOUND), pc.less(values, -INT64_BOUND)),
                                   False)
            rows = pc.indices_nonzero(outside).to_pylist()
            if any(r not in exact for r in rows) or not all(fits_int64(v) for v in exact.values()):
                return None, TEXT.name
            if rows:
                values = pc.if_else(outside, pa.scalar(None, values.type), values)
            ints = values.cast(arrow_type(whole))
            return (_exactly(ints, exact, rows) if exact else ints), whole.name
    return values.cast(arrow_type(target)), target.name


def _exactly(ints: pa.Array, exact: dict[int, int], also: tuple[int, ...] | list[int] = ()) -> pa.Array:
    """Whole numbers with those of ``exact`` (row → value) as written, where the array holds a value
    (or at the rows ``also`` names)."""
    rows = [r for r in sorted(exact) if r < len(ints) and (ints[r].is_valid or r in also)]
    if not rows:
        return ints
    return pc.replace_with_mask(ints, row_mask(len(ints), rows), pa.array([exact[r] for r in rows], ints.type))
