"""Where a sheet's table starts: the header row (or rows) and the title rows above it.

A report often opens with a title block — a title, a date, a blank row — above its table. Taken as
the header, the title names one column and leaves ``column_B``… for the rest, and the real header
becomes a data row that turns every column into text. So, unless the folder's options say
``"header_rows": 0``, the header is found by one deterministic rule (README, "Header detection"):

* the title block is at most :data:`MAX_TITLE_ROWS` rows at the top, each holding one or two values,
  every one text or a date;
* the header is the first row after it holding at least two values, all texts (more than half of them
  distinct), and more values than any title row; a row of more texts right below it is the
  header instead (the first one named groups of columns, and names may repeat from group to group);
* the next row holding values has values under at least two of the header's columns;
* an empty row separates the title block from the header, or every title row holds a single value
  and one of those values under the header is not text (a number, a date...);
* with ``"header_rows": n`` the header found is the last of the n header rows: the rows right above
  it that looked like titles (a group name merged across columns) are its upper rows.

The first title block for which such a header follows wins; without one the header is the first row
holding a value, as it always was. Pure Python: the reader decides before it parses the sheet which
rows its first rows' types come from (``_reading.head.choose_types``), and again on the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_step.converter._columns.cells import Cell

#: Rows by absolute index (0 = row 1), each a mapping of absolute column index → cell.
Grid = Mapping[int, Mapping[int, Cell]]

MAX_TITLE_ROWS = 5
#: Rows from the table's first row that the decision looks at.
WINDOW = 64


@dataclass(frozen=True)
class HeaderChoice:
    first: int  # the first row of the table: its header, or its first data row with no header
    count: int  # header rows (0: none)
    titles: tuple[int, ...] = ()  # title rows skipped above the header

    @property
    def data(self) -> int:
        """The first data row."""
        return self.first + self.count

    def describe(self) -> str:
        """For the log and the metrics, in Excel's row numbers."""
        if self.count == 0:
            where = f"no header row; data from row {self.first + 1}"
        elif self.count == 1:
            where = f"header in row {self.first + 1}"
        else:
            where = f"header in rows {self.first + 1}-{self.first + self.count} (joined)"
        if self.titles:
            rows = ", ".join(str(r + 1) for r in self.titles)
            where += f"; title row{'s' if len(self.titles) > 1 else ''} {rows} skipped"
        return where


def is_value(cell: Cell | None) -> bool:
    return cell is not None and cell[0] != "error" and cell != ("text", "")


def _shown(cell: Cell | None) -> bool:
    """A value a person sees: a cell of only spaces is as empty for the header rule as it looks (the
    readers trim text written without ``xml:space="preserve"`` to nothing, and keep it with it)."""
    return is_value(cell) and not (cell is not None and cell[0] == "text" and not cell[1].strip())


def _values(row: Mapping[int, Cell]) -> list[Cell]:
    return [cell for cell in row.values() if _shown(cell)]


def _is_title(row: Mapping[int, Cell]) -> bool:
    values = _values(row)
    return 1 <= len(values) <= 2 and all(kind in ("text", "datetime", "time") for kind, _ in values)


def _is_names(row: Mapping[int, Cell]) -> bool:
    values = _values(row)
    return len(values) >= 2 and all(kind == "text" for kind, _ in values)


def _is_header(row: Mapping[int, Cell]) -> bool:
    """Names: texts, more than half of them distinct (exports repeat a group's names: CHARGE, BAIL,
    CHARGE, BAIL...)."""
    names = {" ".join(str(value).split()).casefold() for _, value in _values(row)}
    return _is_names(row) and 2 * len(names) > len(_values(row))


def find_header(grid: Grid, header_rows: int | None) -> HeaderChoice | None:
    """The header (``header_rows`` of them: None detects one row, title rows skipped) in the grid's
    rows; None when no row holds a value."""
    filled = sorted(r for r, row in grid.items() if _values(row))
    if not filled:
        return None
    if header_rows == 0:
        return HeaderChoice(filled[0], 0)
    count = header_rows or 1
    for j in range(1, min(MAX_TITLE_ROWS, len(filled) - 2) + 1):
        titles, header = filled[:j], filled[j]
        if not _is_title(grid[titles[-1]]):
            break
        widest = max(len(_values(grid[t])) for t in titles)
        if not _is_header(grid[header]) or len(_values(grid[header])) <= widest:
            continue
        # The row that names every column is the header's last: this one, or a row of more names
        # right below it (this one then names groups of columns).
        last = header
        while last - header < max(count - 1, 1) and _is_names(grid.get(last + 1, {})) and (
                len(_values(grid[last + 1])) > len(_values(grid[last]))):
            last += 1
        below = next((r for r in filled if r > last), None)
        under = [grid[below][c] for c in grid[last] if below is not None and _shown(grid[below].get(c))]
        # Right under a title, a row of names needs a typed column under it: text under text may as
        # well be a table whose header names one column.
        apart = header > titles[-1] + 1 or (widest == 1 and any(kind != "text" for kind, _ in under))
        if len(under) >= 2 and apart:
            first = last - (count - 1)
            while first < header and not all(r in titles for r in range(first, header)):
                first += 1
            return HeaderChoice(first, count, tuple(r for r in filled if r < first))
    return HeaderChoice(filled[0], count)


@dataclass
class Shape:
    """How a table sits in its sheet and which types its columns keep (``build.build_table``)."""

    options: ReadOptions = field(default_factory=ReadOptions)
    #: The header as the sheet's first rows showed it before the parse (None: decided on the table).
    header: HeaderChoice | None = None
    #: Merged areas (first row, first column, last row, last column): a multi-row header's upper
    #: names span the columns their cell is merged across.
    merges: tuple[tuple[int, int, int, int], ...] = ()
    #: The previous version's column → type name, kept with ``"schema_changes": "rescue"``.
    previous: dict[str, str] = field(default_factory=dict)
    #: What the reader learned about the sheet that a person should hear (formulas without values).
    warnings: list[str] = field(default_factory=list)
    #: (row, column) → the whole number a cell holds where the double read from it differs (past 2**53).
    digits: dict[tuple[int, int], int] = field(default_factory=dict)
