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

from sheetdrop_contract.column_types import AUTO, BY_NAME, BY_OPTION, TEXT, ColumnType
from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_step.converter._columns.arrays import arrow_type
from sheetdrop_step.converter._columns.cells import ColumnRead, column_letter
from sheetdrop_step.converter._columns.rules import Finished, finish_column
from sheetdrop_step.converter._table.area import cell_at, clip, first_last, footer, grid, values_mask
from sheetdrop_step.converter._table.header import HeaderChoice, Shape, find_header, is_value
from sheetdrop_step.converter._table.names import header_names, safe_name, unique_names

RESCUED = "_rescued_data"
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


def build_table(columns: list[ColumnRead], date1904: bool, threads: int = 1, shape: Shape | None = None,
                ) -> SheetTable | None:
    """The table a sheet as read holds; None when no cell (in the range) holds a value."""
    shape = shape or Shape()
    options = shape.options
    whole, columns = columns, clip(columns, options)
    choice = shape.header or find_header(grid(columns), options.header_rows)
    if choice is None or not columns:
        return None
    present = [values_mask(c) for c in columns]
    # Error cells occupy their row (they are counted); empty text does not.
    end = 1 + max([r for m in present for r in first_last(m)[1:]] + [
        r for c in columns for r, cell in c.foreign.items() if cell != ("text", "")], default=choice.first)
    end = max(footer(columns, present, choice.data, end, options), choice.data)
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
    digits: dict[int, dict[int, int]] = {}
    for (r, c), value in shape.digits.items():
        digits.setdefault(c, {})[r] = value
    with ThreadPoolExecutor(max(1, threads), "sheetdrop-column") as pool:
        done: list[Finished] = list(pool.map(
            lambda col, want: finish_column(col, date1904, choice.data, end, *want, rescue=rescue,
                                            exact=digits.get(col.index)), columns, wants))
    arrays, final_names = [d.array for d in done], list(final)
    types = {n: d.type for n, d in zip(final, done, strict=True)}
    for col, name, item in zip(columns, final, done, strict=True):
        warnings += _column_warnings(col, name, item, choice.data, types[name])
    rescued = {n: len(d.rescued) for n, d in zip(final, done, strict=True) if d.rescued}
    if rescue or options.types or options.schema_changes == "rescue":
        # Always there when cells can be rescued, so that the schema does not depend on the data.
        final_names = unique_names([*final, RESCUED])
        arrays.append(_rescued_column([d.rescued for d in done], final, end - choice.data))
        types[final_names[-1]] = TEXT.name  # JSON text
    warnings += _totals(columns, choice, end, options)
    if end == choice.data:
        warnings.append(f"no data rows ({choice.describe()}" + (
            f"; read options: {', '.join(_shaping(options))})" if _shaping(options) else ")"))
    table = pa.Table.from_arrays(arrays, names=final_names)
    return SheetTable(table, types, {n: a.null_count for n, a in zip(final_names, arrays, strict=True)},
                      {n: d.errors for n, d in zip(final, done, strict=True)}, choice, warnings, rescued)


def _wants(names: list[str | None], final: list[str], shape: Shape,
           ) -> tuple[list[tuple[ColumnType | None, bool]], list[str]]:
    """The type each column is asked for, and whether text that reads as one fits it: the options'
    ``types`` by name (as in the header, or as written; any letter case), else the previous
    version's type when ``schema_changes`` is ``rescue`` (its own kind only)."""
    asked = {" ".join(key.split()).casefold(): (key, kind) for key, kind in shape.options.types.items()}
    keep = shape.previous if shape.options.schema_changes == "rescue" else {}
    wants: list[tuple[ColumnType | None, bool]] = []
    used: set[str] = set()
    for name, written in zip(names, final, strict=True):
        found = asked.get(" ".join((name or "").split()).casefold()) or asked.get(written.casefold())
        if found:
            used.add(found[0])
        wants.append((BY_OPTION[found[1]], True) if found else (BY_NAME.get(keep.get(written, "")), False))
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
        one, many = AUTO[mixed.majority].called
        out.append(f"column {name} ({column_letter(col.index)}) became text: {mixed.others} of {_cells(mixed.values)} "
                   f"{f'is not {one}' if mixed.others == 1 else f'are not {many}'} ({seen}); "
                   f'"mixed_columns": "rescue" keeps its type and moves them to {RESCUED}')
    if item.beyond is not None:
        out.append(f"column {name} ({column_letter(col.index)}) became text: its whole numbers reach {item.beyond}, "
                   "beyond what a 64-bit integer holds (each as Excel shows it)")
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
        return pa.nulls(size, arrow_type(TEXT))
    listed: list[str | None] = [None] * size
    for r, found in rows.items():
        listed[r] = json.dumps(found, ensure_ascii=False)
    return pa.array(listed, arrow_type(TEXT))


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
