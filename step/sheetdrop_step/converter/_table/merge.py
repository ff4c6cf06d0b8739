"""A sheet read in pieces (``_reading.pieces``) made one read again, as a whole read would give it."""

from __future__ import annotations

import pyarrow as pa

from sheetdrop_contract.column_types import AUTO
from sheetdrop_step.converter._columns.arrays import arrow_type
from sheetdrop_step.converter._columns.cells import ColumnRead


def merge(reads: list[tuple[int, list[ColumnRead], int]]) -> list[ColumnRead]:
    """A sheet read in pieces (first row, columns, rows read) as one read: each piece's rows run up to
    the next one's first (rows past it would be out of order: ValueError), a column a piece lacks is
    empty there, and the columns run from the first to the last any piece has, as in one read."""
    ends = [first for first, _, _ in reads[1:]] + [reads[-1][0] + reads[-1][2]]
    if any(first + rows > end for (first, _, rows), end in zip(reads, ends, strict=True)):
        raise ValueError("rows out of order across pieces")
    pieces = [({c.index: c for c in cols}, end - first) for (first, cols, _), end in zip(reads, ends, strict=True)]
    found = {i: c for columns, _ in pieces for i, c in columns.items()}
    merged = []
    for index in range(min(found), max(found) + 1) if found else ():
        # A column no piece has holds no value: its type cannot matter.
        kind, dtype = (found[index].kind, found[index].native.type) if index in found else (
            "number", arrow_type(AUTO["number"]))
        held = [(columns.get(index), rows) for columns, rows in pieces]
        native = pa.concat_arrays([array for col, rows in held for array in (
            [col.native, pa.nulls(rows - len(col.native), dtype)] if col else [pa.nulls(rows, dtype)])])
        foreign = {r: cell for col, _ in held if col for r, cell in col.foreign.items()}
        merged.append(ColumnRead(index, native, kind, foreign))
    return merged
