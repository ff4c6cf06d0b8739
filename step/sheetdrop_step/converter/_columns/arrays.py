"""Columns as Arrow arrays: a column type's Arrow type, serial numbers as timestamps, row masks, a column
from single cells."""

from __future__ import annotations

import datetime as dt
import functools

import pyarrow as pa
import pyarrow.compute as pc

from sheetdrop_contract.column_types import AUTO, ColumnType
from sheetdrop_step.converter._columns.cells import EPOCH, MS_PER_DAY, Cell, ColumnRead

#: Dates and times as the readers give them (milliseconds), before a column type's own resolution.
READ_TIMESTAMPS = pa.timestamp("ms")


@functools.cache
def arrow_type(column_type: ColumnType) -> pa.DataType:
    return pa.type_for_alias(column_type.arrow)


def cells_type(kind: str) -> pa.DataType:
    """The Arrow type a kind's cells are held in as read: its type's, or the readers' timestamps."""
    return READ_TIMESTAMPS if kind == "datetime" else arrow_type(AUTO[kind])


def serial_timestamps(ms: pa.Array, date1904: bool) -> pa.Array:
    """``cells.serial_datetime`` on a column of serial numbers in milliseconds (int64)."""
    if not date1904:
        late = pc.greater_equal(ms, 60 * MS_PER_DAY)
        ms = pc.if_else(late, pc.subtract(ms, MS_PER_DAY), ms)
    epoch = int(EPOCH[date1904].replace(tzinfo=dt.UTC).timestamp() * 1000)
    return pc.add(ms, epoch).cast(READ_TIMESTAMPS)


def row_mask(size: int, rows: list[int]) -> pa.Array:
    """A boolean array of ``size`` set at ``rows`` (built in C: a column has ~100k rows, few set)."""
    flags = bytearray(size)
    for r in rows:
        flags[r] = 1
    return pa.Array.from_buffers(pa.uint8(), size, [None, pa.py_buffer(flags)]).cast(pa.bool_())


def column_from_cells(index: int, cells: list[Cell | None]) -> ColumnRead:
    """A column from cells read one by one: native when its values are of one kind."""
    kinds = {c[0] for c in cells if c is not None and c[0] != "error"}
    if len(kinds) != 1:
        return ColumnRead(index, None, None, {r: c for r, c in enumerate(cells) if c is not None})
    kind = kinds.pop()
    native = pa.array([c[1] if c is not None and c[0] == kind else None for c in cells], cells_type(kind))
    return ColumnRead(index, native, kind, {r: c for r, c in enumerate(cells) if c is not None and c[0] == "error"})
