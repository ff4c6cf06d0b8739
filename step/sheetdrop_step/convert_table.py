"""A sheet as read → the table that is written: where the table is (the folder's ``range``, title rows,
header rows, ``footer``), its column names, each column through the column rules with the type the
options ask for, the cells no type could hold in ``_rescued_data``, and the warnings a person needs
(a column made text and the cells that did it, cells rescued, a hint that names no column, a last row
that looks like totals). Pure pyarrow; README, "The converter" and "Read options".
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_step.convert_columns import (
    Cell,
    ColumnRead,
    Finished,
    cell_texts,
    column_letter,
    finish_column,
    row_mask,
    safe_name,
    unique_names,
)
from sheetdrop_step.convert_header import WINDOW, HeaderChoice, Shape, find_header, is_value

RESCUED = "_rescued_data"
#: A schema tag's type name → the type asked for (``"schema_changes": "rescue"`` keeps it).
KEEP = {"int64": "int", "float64": "float", "string": "string", "timestamp": "datetime", "date": "date",
        "bool": "bool", "time": "time", "duration": "duration"}
#: A kind as "1 cell is not …" and "2 cells are not …" say it.
KIND_NAMES = {"number": ("a number", "numbers"), "text": ("text", "text"), "datetime": ("a date", "dates"),
              "time": ("a time of day", "times of day"), "duration": ("a duration", "durations"),
              "bool": ("a boolean", "booleans")}
_TOTALS = re.compile(r"^\s*(grand\s+|sub-?)?totals?\b", re.IGNORECASE)


@dataclass
class SheetTable:
    table: pa.Table
    types: dict[str, str]
    nulls: dict[str, int]
    errors: dict[str, int]
    header: HeaderChoice
    warnings: list[str] = field(default_factory=list)
    rescued: dict[str, int] = field(default_factory=dict)  # column → cells in _rescued_data


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


def header_row(columns: list[ColumnRead]) -> int | None:
    """The first row holding a value that is not empty text (None: no such row)."""
    rows = [r for c in columns for r in _rows(_present(c))[:1]]
    rows += [r for c in columns for r, cell in c.foreign.items() if is_value(cell)]
    return min(rows, default=None)


def cell_at(col: ColumnRead, row: int) -> Cell | None:
    cell = col.foreign.get(row)
    if cell is None and col.native is not None and row < len(col.native) and col.native[row].is_valid:
        cell = (col.kind or "text", col.native[row].as_py())
    return cell


def grid(columns: list[ColumnRead]) -> dict[int, dict[int, Cell]]:
    """The table's first rows as :func:`convert_header.find_header` reads them."""
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


def build_table(columns: list[ColumnRead], date1904: bool, threads: int = 1, shape: Shape | None = None,
                ) -> SheetTable | None:
    """The table a sheet as read holds; None when no cell (in the range) holds a value."""
    shape = shape or Shape()
    options = shape.options
    whole, columns = columns, clip(columns, options)
    choice = shape.header or find_header(grid(columns), options.header_rows)
    if choice is None or not columns:
        return None
    present = [_present(c) for c in columns]
    # Error cells occupy their row (they are counted); empty text does not.
    end = 1 + max([r for m in present for r in _rows(m)[1:]] + [
        r for c in columns for r, cell in c.foreign.items() if cell != ("text", "")], default=choice.first)
    end = max(_footer(columns, present, choice.data, end, options), choice.data)
    names = header_names(columns, choice, shape.merges, date1904, whole)
    keep = [bool(name) or any(choice.data <= r < end and cell != ("text", "") for r, cell in col.foreign.items())
            or (mask is not None and pc.any(mask.slice(choice.data, end - choice.data)).as_py())
            for col, name, mask in zip(columns, names, present, strict=True)]
    if not any(keep):
        return None
    first, last = keep.index(True), len(keep) - 1 - keep[::-1].index(True)
    columns, names = columns[first:last + 1], names[first:last + 1]
    final = unique_names([safe_name(name, col.index) for col, name in zip(columns, names, strict=True)])
    wants, warnings = _wants(names, final, shape)
    rescue = options.mixed_columns == "rescue"
    # Columns side by side: pyarrow's kernels run without the GIL.
    with ThreadPoolExecutor(max(1, threads), "sheetdrop-column") as pool:
        done: list[Finished] = list(pool.map(
            lambda col, want: finish_column(col, date1904, choice.data, end, *want, rescue=rescue), columns, wants))
    arrays, final_names = [d.array for d in done], list(final)
    types = {n: d.type for n, d in zip(final, done, strict=True)}
    for col, name, item in zip(columns, final, done, strict=True):
        warnings += _column_warnings(col, name, item, choice.data, types[name])
    rescued = {n: len(d.rescued) for n, d in zip(final, done, strict=True) if d.rescued}
    if rescue or options.types or options.schema_changes == "rescue":
        # Always there when cells can be rescued, so that the schema does not depend on the data.
        final_names = unique_names([*final, RESCUED])
        arrays.append(_rescued_column([d.rescued for d in done], final, end - choice.data))
        types[final_names[-1]] = "string"
    warnings += _totals(columns, choice, end, options)
    if end == choice.data:
        warnings.append(f"no data rows ({choice.describe()}" + (
            f"; read options: {', '.join(_shaping(options))})" if _shaping(options) else ")"))
    table = pa.Table.from_arrays(arrays, names=final_names)
    return SheetTable(table, types, {n: a.null_count for n, a in zip(final_names, arrays, strict=True)},
                      {n: d.errors for n, d in zip(final, done, strict=True)}, choice, warnings, rescued)


def _footer(columns: list[ColumnRead], present: list[pa.Array | None], start: int, end: int,
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


def header_names(columns: list[ColumnRead], choice: HeaderChoice, merges: tuple[tuple[int, int, int, int], ...],
                 date1904: bool, whole: list[ColumnRead] | None = None) -> list[str | None]:
    """Each column's name: its header cells as Excel shows them, joined with spaces (a name repeated
    down the rows once); with several header rows an upper cell names every column it is merged across
    (its own column may be outside the range: ``whole`` has every column)."""
    rows = range(choice.first, choice.data)
    cells = {(r, c.index): cell for c in columns for r in rows if (cell := cell_at(c, r)) is not None}
    by_index = {c.index: c for c in whole or columns}
    if len(rows) > 1:
        for r0, c0, r1, c1 in merges:
            top = cell_at(by_index[c0], r0) if c0 in by_index and r0 in rows else None
            if top is not None:
                for r in range(r0, min(r1, rows[-1]) + 1):
                    for c in range(c0, c1 + 1):
                        cells.setdefault((r, c), top)
    keys = sorted(cells)
    shown = dict(zip(keys, cell_texts([cells[k] for k in keys], date1904), strict=True))
    names: list[str | None] = []
    for col in columns:
        parts: list[str] = []
        for r in rows:
            text = shown.get((r, col.index))
            if text and (not parts or parts[-1] != text):
                parts.append(text)
        names.append(" ".join(parts) or None)
    return names


def _wants(names: list[str | None], final: list[str], shape: Shape,
           ) -> tuple[list[tuple[str | None, bool]], list[str]]:
    """The type each column is asked for, and whether text that reads as one fits it: the options'
    ``types`` by name (as in the header, or as written; any letter case), else the previous
    version's type when ``schema_changes`` is ``rescue`` (its own kind only)."""
    asked = {" ".join(key.split()).casefold(): (key, kind) for key, kind in shape.options.types.items()}
    keep = shape.previous if shape.options.schema_changes == "rescue" else {}
    wants: list[tuple[str | None, bool]] = []
    used: set[str] = set()
    for name, written in zip(names, final, strict=True):
        found = asked.get(" ".join((name or "").split()).casefold()) or asked.get(written.casefold())
        if found:
            used.add(found[0])
        wants.append((found[1], True) if found else (KEEP.get(keep.get(written, "")), False))
    missing = [key for key in shape.options.types if key not in used]
    warnings = [f"types: no column named {key!r} (the columns are {', '.join(final)})" for key in missing]
    return wants, warnings


def _shaping(options: ReadOptions) -> list[str]:
    """The options that decide which rows are data, as a person would look them up."""
    found = [f"range {options.range}"] if options.range else []
    found += [f"header_rows {options.header_rows}"] if options.header_rows is not None else []
    found += [f"footer.drop_rows {options.footer_rows}"] if options.footer_rows else []
    return found + (["footer.stop_at_empty_row"] if options.stop_at_empty_row else [])


def _ref(col: ColumnRead, row: int) -> str:
    return f"{column_letter(col.index)}{row + 1}"


def _cells(n: int) -> str:
    return f"{n} cell{'s' if n != 1 else ''}"


def _column_warnings(col: ColumnRead, name: str, item: Finished, data: int, kind: str) -> list[str]:
    out = []
    if item.mixed is not None and item.mixed.majority != "text":
        mixed = item.mixed
        seen = ", ".join(f"{_ref(col, data + r)} {text!r}" for r, text in mixed.first)
        one, many = KIND_NAMES[mixed.majority]
        out.append(f"column {name} ({column_letter(col.index)}) became text: {mixed.others} of {_cells(mixed.values)} "
                   f"{f'is not {one}' if mixed.others == 1 else f'are not {many}'} ({seen}); "
                   f'"mixed_columns": "rescue" keeps its type and moves them to {RESCUED}')
    if item.rescued:
        seen = ", ".join(f"{_ref(col, data + r)} {text!r}" for r, text in list(item.rescued.items())[:3])
        out.append(f"column {name} ({column_letter(col.index)}): {_cells(len(item.rescued))} did not fit {kind} "
                   f"and {'is' if len(item.rescued) == 1 else 'are'} in {RESCUED} ({seen})")
    return out


def _rescued_column(rescued: list[dict[int, str]], names: list[str], size: int) -> pa.Array:
    """Per row, a JSON object of each rescued cell's column and text (null where nothing was rescued)."""
    rows: dict[int, dict[str, str]] = {}
    for name, cells in zip(names, rescued, strict=True):
        for r, text in cells.items():
            rows.setdefault(r, {})[name] = text
    if not rows:
        return pa.nulls(size, pa.string())
    listed: list[str | None] = [None] * size
    for r, found in rows.items():
        listed[r] = json.dumps(found, ensure_ascii=False)
    return pa.array(listed, pa.string())


def _totals(columns: list[ColumnRead], choice: HeaderChoice, end: int, options: ReadOptions) -> list[str]:
    """A last data row that starts with "Total" is most likely one (and makes its columns mixed)."""
    if options.footer_rows or end <= choice.data:
        return []
    for col in columns:
        cell = cell_at(col, end - 1)
        if is_value(cell):
            if cell is not None and cell[0] == "text" and _TOTALS.match(cell[1]):
                return [f"row {end} looks like a totals row ({_ref(col, end - 1)} {cell[1]!r}); "
                        '"footer": {"drop_rows": 1} leaves it out']
            return []
    return []
