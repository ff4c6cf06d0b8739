"""The bounded scan's counts and area, however the inflated sheet arrives in chunks; and the count
check's second read, which reads only the columns that can hide a silently coerced cell, in groups
small enough for its reported cells to fit in memory."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow as pa
import pytest
import xlsxwriter

from sheetdrop_step.converter._columns.cells import ColumnRead
from sheetdrop_step.converter._reading.counts import check
from sheetdrop_step.converter._reading.head import Head
from sheetdrop_step.converter._safety.scan import TEXT_TYPES, SheetScan


def test_counts_and_area_do_not_depend_on_the_chunks(tmp_path: Path) -> None:
    src = tmp_path / "cells.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet()
    for r in range(1200):
        ws.write_row(r, 0, [r % 2 == 0, f"t{r}", r, True])
    ws.write_number(1200, 30, 1)  # the last value, in column AE
    wb.close()
    xml = zipfile.ZipFile(src).read("xl/worksheets/sheet1.xml")
    expected = (xml.count(b't="b"'), sum(xml.count(p) for p in TEXT_TYPES))
    assert expected == (2400, 1200)
    for size in (7, 13, 4096, len(xml)):
        scan = SheetScan()
        for at in range(0, len(xml), size):
            scan.feed(xml[at:at + size])
        counts = scan.counts
        assert (counts.bools, counts.texts, counts.rows, counts.columns) == (*expected, 1201, 31), size


def test_a_second_read_takes_the_suspect_columns_in_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    from sheetdrop_step.converter._reading import counts
    from sheetdrop_step.converter._safety.scan import SheetCounts

    monkeypatch.setattr(counts, "STRICT_CELLS", 8)  # 4 rows: two columns per read
    columns = [
        ColumnRead(0, pa.array(["n", None, None, None]), "text"),
        ColumnRead(1, pa.array([None, 1.0, 2.0, 0.0]), "number", {0: ("text", "a")}),  # numbers
        ColumnRead(2, pa.array(["b", "x", "y", "z"]), "text"),  # text that renders like nothing else
        ColumnRead(3, pa.array(["c", "1.5", "true", "q"]), "text"),  # text holding renderings
        ColumnRead(4, pa.array([None, True, False, True]), "bool", {0: ("text", "d")}),  # booleans
    ]
    types = {0: ("string", "text"), 1: ("float", "number"), 2: ("string", "text"), 3: ("string", "text"),
             4: ("boolean", "bool")}
    reads: list[list[int]] = []

    def strict_read(strict: dict[int, tuple[str, str]], only: list[int]) -> list[ColumnRead]:
        assert set(strict) == set(only)
        reads.append(only)
        return [ColumnRead(i, pa.nulls(4, pa.duration("ms")), "datetime", {1: ("number", 9.0)}) for i in only]

    out, notes = check(columns, Head(types), SheetCounts(bools=4, texts=99), strict_read, "S")
    assert reads == [[1, 3], [4]]
    assert [c.foreign.get(1) for c in out] == [None, ("number", 9.0), None, ("number", 9.0), ("number", 9.0)]
    assert notes == ["sheet 'S': columns B, D, E read again with every cell checked: the first 1000 rows did not "
                     "show every kind of cell they hold"]
