""".xls workbooks that another maintained reader (xlrd) opens must convert, with the values xlrd reads:
a workbook stream named in another letter case, a chart embedded in a worksheet (its cached values
are cell-like records: calamine 0.36 reads them as cells and ends the sheet there), a formula record
cut short (calamine 0.36 panics). Workbooks written by tests/workbooks/make_xls.py.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xlrd

from sheetdrop_step.converter import convert_workbook
from tests.workbooks.make_xls import BrokenFormula, CellError, Chart, write_xls

ROWS = [["id", "amount", "code"], *[[i, i * 1.5, f"{i:04d}"] for i in range(1, 41)]]
TABLE = {"id": [r[0] for r in ROWS[1:]], "amount": [r[1] for r in ROWS[1:]], "code": [r[2] for r in ROWS[1:]]}


SPENT = dt.timedelta(hours=250, minutes=10, seconds=10)


def table(path: Path) -> dict[str, list]:
    return pq.read_table(path).to_pydict()


def by_xlrd(path: Path) -> dict[str, list]:
    """The reference: xlrd's reading of the first sheet, header row first."""
    sheet = xlrd.open_workbook(str(path)).sheet_by_index(0)
    header = sheet.row_values(0)
    return {name: [v for v in sheet.col_values(c)[1:]] for c, name in enumerate(header)}


@pytest.mark.parametrize("stream", ["Workbook", "WORKBOOK", "workbook", "BOOK", "Book"])
def test_workbook_stream_in_any_letter_case(tmp_path: Path, stream: str) -> None:
    src = write_xls(tmp_path / "case.xls", {"Data": ROWS}, stream_name=stream)
    out = convert_workbook(src, tmp_path / "out")
    assert [o.sheet for o in out] == ["Data"]
    assert table(out[0].path) == TABLE
    assert {k: [float(x) if k != "code" else x for x in v] for k, v in TABLE.items()} == by_xlrd(src)


def test_an_embedded_chart_leaves_no_phantom_cells(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The chart's substream sits after row 20 and caches three values at (0..2, 0): calamine 0.36 would
    # read them as cells of rows 1-3 (the header among them) and stop the sheet at the chart's end.
    src = write_xls(tmp_path / "chart.xls", {"Data": ROWS}, charts={"Data": Chart(20, [100.0, 200.0, 300.0])})
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out")
    assert table(out[0].path) == TABLE
    assert out[0].column_types == {"id": "int64", "amount": "float64", "code": "string"}
    assert any("read by xlrd" in r.getMessage() for r in caplog.records)


def test_a_formula_record_cut_short_reads_as_its_cached_value(tmp_path: Path) -> None:
    rows = [list(r) for r in ROWS]
    rows[5][1] = BrokenFormula(7.5)  # calamine 0.36 panics on it; xlrd reads the cached value
    src = write_xls(tmp_path / "formula.xls", {"Data": rows})
    assert by_xlrd(src)["amount"][4] == 7.5
    out = convert_workbook(src, tmp_path / "out")
    assert table(out[0].path) == TABLE


@pytest.mark.parametrize("date1904", [False, True])
def test_every_kind_of_cell_as_xlrd_reads_it(tmp_path: Path, date1904: bool) -> None:
    rows = [
        ["n", "x", "when", "day", "at", "spent", "ok", "label", "mixed"],
        [1, 0.5, dt.datetime(2021, 1, 2, 3, 4, 5), dt.date(2021, 1, 2), dt.time(9, 30), SPENT, True, "a", 1.5],
        [2, CellError("#DIV/0!"), dt.datetime(1999, 12, 31, 23, 59, 59), dt.date(2000, 2, 29), dt.time(23, 59, 59),
         dt.timedelta(minutes=5), False, CellError("#N/A"), "TBD"],
        [3, -0.125, dt.datetime(2024, 2, 29, 12), dt.date(1904, 1, 5), dt.time(0, 0, 1), dt.timedelta(0), True, "c",
         True],
    ]
    src = write_xls(tmp_path / "kinds.xls", {"Data": rows, "Secret": [["h"], [1]]}, hidden=["Secret"],
                    date1904=date1904)
    out = convert_workbook(src, tmp_path / "out")
    assert [o.sheet for o in out] == ["Data"]  # the hidden sheet is skipped
    assert out[0].column_types == {"n": "int64", "x": "float64", "when": "timestamp", "day": "timestamp",
                                   "at": "time", "spent": "duration", "ok": "bool", "label": "string",
                                   "mixed": "string"}
    assert table(out[0].path) == {
        "n": [1, 2, 3], "x": [0.5, None, -0.125],
        "when": [dt.datetime(2021, 1, 2, 3, 4, 5), dt.datetime(1999, 12, 31, 23, 59, 59), dt.datetime(2024, 2, 29, 12)],
        "day": [dt.datetime(2021, 1, 2), dt.datetime(2000, 2, 29), dt.datetime(1904, 1, 5)],
        "at": [dt.time(9, 30), dt.time(23, 59, 59), dt.time(0, 0, 1)],
        "spent": [SPENT, dt.timedelta(minutes=5), dt.timedelta(0)],
        "ok": [True, False, True], "label": ["a", None, "c"], "mixed": ["1.5", "TBD", "TRUE"],
    }
    assert out[0].error_counts == {"n": 0, "x": 1, "when": 0, "day": 0, "at": 0, "spent": 0, "ok": 0, "label": 1,
                                   "mixed": 0}
    # xlrd, the reference, on the same cells: serial numbers with its own date conversion.
    book = xlrd.open_workbook(str(src))
    sheet = book.sheet_by_index(0)
    assert [xlrd.xldate_as_datetime(v, book.datemode) for v in sheet.col_values(2)[1:]] == table(out[0].path)["when"]
    assert sheet.col_values(0)[1:] == [1.0, 2.0, 3.0]
