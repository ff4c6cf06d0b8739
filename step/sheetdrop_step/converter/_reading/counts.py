"""The count check (in the reader process): the boolean and text cells a sheet holds as read, against
what the scan counted in its XML. fastexcel coerces some cells silently under a column's type
(``fastexcel``); another count than the scan's means one was, and the columns that can hide one are
read again with every cell reported.
"""

from __future__ import annotations

from collections.abc import Callable

from sheetdrop_step.converter._columns.cells import ColumnRead, column_letter
from sheetdrop_step.converter._reading.fastexcel import ALL_BUT_DATES, DEFAULT
from sheetdrop_step.converter._reading.head import HEAD_ROWS, Head
from sheetdrop_step.converter._safety.scan import SheetCounts

#: Cells reported at once by a second read (each is a Python object of ~300 bytes): a second read of
#: more columns is made in groups of columns, one parse each.
STRICT_CELLS = 2_000_000


def check(columns: list[ColumnRead], head: Head, expected: SheetCounts | None,
          strict_read: Callable[[dict[int, tuple[str, str]], list[int]], list[ColumnRead]], name: str,
          ) -> tuple[list[ColumnRead], list[str]]:
    """The cells above the data (header and title rows) as the first rows showed them, then the count
    check: other numbers of boolean and text cells than the scan counted mean a silently coerced cell
    (which one, the counts do not tell). The columns that can hide one are read again, every cell but
    the dates reported: those of numbers, of booleans, and of text holding what a number or boolean
    would be rendered as."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from sheetdrop_step.converter._columns.arrays import row_mask

    bools = texts = 0
    for col in columns:
        for r, cells in head.above.items():
            cell = cells.get(col.index)
            if cell is None or r in col.foreign or col.native is None or r >= len(col.native) or (
                    not col.native[r].is_valid):
                continue
            # Read as its column's type (a TRUE over numbers is 1.0): from here on the cell as it is.
            bools -= col.kind == "bool"
            texts -= col.kind == "text"
            col.foreign[r] = cell
    seen = observed(columns)
    if expected is None or (expected.bools, expected.texts) == (seen[0] + bools, seen[1] + texts):
        return columns, []

    def suspect(col: ColumnRead) -> bool:
        (dtype, kind), native = head.types.get(col.index, DEFAULT), col.native
        if native is None or dtype == ALL_BUT_DATES:
            return False
        return kind != "text" or bool(pc.any(pc.match_substring_regex(native, r"^(-?\d|true$|false$)")).as_py())

    again = {c.index: c for c in columns}
    suspects = [c.index for c in columns if suspect(c)]
    if not suspects:  # no column could hide a coerced cell: nothing to read again
        return columns, []
    size = max(1, STRICT_CELLS // max(1, len(columns[0].native) if columns and columns[0].native is not None else 1))
    for group in (suspects[i:i + size] for i in range(0, len(suspects), size)):
        strict = {i: (ALL_BUT_DATES, "duration" if head.types.get(i, DEFAULT)[1] == "duration" else "datetime")
                  for i in group}
        for col in strict_read(strict, group):
            # A second read as durations cannot tell a date from a duration; where the first reported one
            # with its subtype (a column of numbers or booleans), that cell is taken from the first.
            dates = {r: c for r, c in again[col.index].foreign.items() if c[0] in ("datetime", "duration")}
            if dates and col.native is not None:
                mask = row_mask(len(col.native), list(dates))
                col.native = pc.if_else(mask, pa.scalar(None, col.native.type), col.native)
                col.foreign.update(dates)
            col.foreign.update({r: c for r, c in again[col.index].foreign.items() if r in head.above})
            again[col.index] = col
    letters = ", ".join(column_letter(i) for i in suspects)
    return list(again.values()), [f"sheet {name!r}: columns {letters} read again with every cell checked: the first "
                                  f"{HEAD_ROWS} rows did not show every kind of cell they hold"]


def observed(columns: list[ColumnRead]) -> tuple[int, int]:
    """Booleans and text cells as read: the native values of boolean and text columns, and the cells
    reported as booleans or text anywhere."""
    bools = texts = 0
    for col in columns:
        held = len(col.native) - col.native.null_count if col.native is not None else 0
        bools += held if col.kind == "bool" else 0
        texts += held if col.kind == "text" else 0
        for kind, _ in col.foreign.values():
            bools += kind == "bool"
            texts += kind == "text"
    return bools, texts
