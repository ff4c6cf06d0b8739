"""Where a sheet's table is among the columns as read: the options' ``range`` (:func:`clip`), the first
row holding a value and the first rows header detection reads (:func:`grid`), and where the data ends
(:func:`footer`: ``stop_at_empty_row``, ``drop_rows``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_step.converter._columns.arrays import row_mask
from sheetdrop_step.converter._columns.cells import Cell, ColumnRead
from sheetdrop_step.converter._table.header import WINDOW, is_value


def values_mask(col: ColumnRead) -> pa.Array | None:
    """Where the native array holds a value (non-empty text for text)."""
    if col.native is None:
        return None
    if col.kind == "text":
        return pc.fill_null(pc.not_equal(col.native, ""), False)
    return pc.is_valid(col.native)


def first_last(mask: pa.Array | None) -> list[int]:
    """The first and the last row of a mask that are set ([] when none is)."""
    if mask is None or not pc.any(mask).as_py():
        return []
    return [pc.index(mask, True).as_py(), pc.indices_nonzero(mask)[-1].as_py()]


def header_row(columns: list[ColumnRead]) -> int | None:
    """The first row holding a value that is not empty text (None: no such row)."""
    rows = [r for c in columns for r in first_last(values_mask(c))[:1]]
    rows += [r for c in columns for r, cell in c.foreign.items() if is_value(cell)]
    return min(rows, default=None)


def cell_at(col: ColumnRead, row: int) -> Cell | None:
    cell = col.foreign.get(row)
    if cell is None and col.native is not None and row < len(col.native) and col.native[row].is_valid:
        cell = (col.kind or "text", col.native[row].as_py())
    return cell


def grid(columns: list[ColumnRead]) -> dict[int, dict[int, Cell]]:
    """The table's first rows as :func:`header.find_header` reads them."""
    top = header_row(columns)
    if top is None:
        return {}
    rows: dict[int, dict[int, Cell]] = {}
    for col in columns:
        for r in range(top, top + WINDOW):
            cell = cell_at(col, r)
            if is_value(cell):
                rows.setdefault(r, {})[col.index] = cell
    return rows


def clip(columns: list[ColumnRead], options: ReadOptions) -> list[ColumnRead]:
    """The columns and rows inside the options' ``range``."""
    area = options.cell_range()
    if area is None:
        return columns
    kept = []
    for col in columns:
        if col.index < area.first_col or (area.last_col is not None and col.index > area.last_col):
            continue
        native = col.native
        if native is not None:
            if area.last_row is not None:
                native = native.slice(0, area.last_row + 1)
            if area.first_row:
                head = pa.nulls(min(area.first_row, len(native)), native.type)
                native = pa.concat_arrays([head, native.slice(area.first_row)])
        foreign = {r: c for r, c in col.foreign.items()
                   if r >= area.first_row and (area.last_row is None or r <= area.last_row)}
        kept.append(ColumnRead(col.index, native, col.kind, foreign))
    return kept


def footer(columns: list[ColumnRead], present: list[pa.Array | None], start: int, end: int,
            options: ReadOptions) -> int:
    """Where the data ends: before the first empty row (``stop_at_empty_row``), before the last
    ``drop_rows`` rows holding values, then after the last row holding one."""
    if not (options.stop_at_empty_row or options.footer_rows) or end <= start:
        return end
    held = pa.array([False] * (end - start), pa.bool_())
    for mask in present:
        if mask is not None:
            part = mask.slice(start, end - start)
            held = pc.or_(held, pa.concat_arrays([part, pa.array([False] * (end - start - len(part)), pa.bool_())]))
    rows = sorted({r - start for col in columns for r, cell in col.foreign.items()
                   if start <= r < end and cell != ("text", "")})
    if rows:
        held = pc.or_(held, row_mask(end - start, rows))
    if options.stop_at_empty_row and pc.any(held).as_py():
        first = pc.index(held, True).as_py()  # empty rows right under the header are not the end
        gap = pc.index(held.slice(first), False).as_py()
        if gap >= 0:
            held = held.slice(0, first + gap)
    filled = pc.indices_nonzero(held).to_pylist()
    if options.footer_rows:
        filled = filled[:-options.footer_rows]
    return start + (filled[-1] + 1 if filled else 0)
