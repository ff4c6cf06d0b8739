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
from tests.workbooks.make_xls import BrokenFormula, CellError, Chart, write_biff, write_xls

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


@pytest.mark.parametrize("position", [0, 1])
def test_a_chart_sheet_is_skipped_with_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  position: int) -> None:
    # calamine's any_sheets.xls: a chart sheet (BOUNDSHEET type 2) was converted as a worksheet of its
    # cached values (chart.parquet, 2 x 2). Before the worksheet or after it, it is skipped as xlsx's are.
    sheets = {"Data": ROWS, "Chart1": []} if position else {"Chart1": [], "Data": ROWS}
    src = write_xls(tmp_path / "chart-sheet.xls", sheets, chart_sheets=["Chart1"])
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out")
    assert [o.sheet for o in out] == ["Data"] and table(out[0].path) == TABLE
    assert out.skipped == [("Chart1", "chart sheet")]  # the run's metric skipped_sheets
    assert "skipped sheet 'Chart1' of chart-sheet.xls: chart sheet" in caplog.text


def test_text_calamine_decodes_as_utf16_bytes_is_read_by_xlrd(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    # A code page other than Excel's UTF-16 (1252, as readxl's mtcars.xls has) and 8-bit strings:
    # calamine 0.36 read "Titel" as "T\x00i\x00t\x00e\x00l\x00", the column as T_i_t_e_l.
    rows = [["Titel", "År", "Regissör"], ["Ett", 1962, "Zoë"], ["Två", 1963, "Åke"]]
    src = write_xls(tmp_path / "cp1252.xls", {"Filmer": rows}, codepage=1252)
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        (out,) = convert_workbook(src, tmp_path / "out")
    assert table(out.path) == {"Titel": ["Ett", "Två"], "År": [1962, 1963], "Regissör": ["Zoë", "Åke"]}
    assert "read by xlrd: calamine decoded text as 'T\\x00i\\x00t\\x00e\\x00l\\x00'" in caplog.text


def test_a_sheet_name_calamine_decodes_otherwise_is_taken_from_the_workbook(tmp_path: Path) -> None:
    # An 8-bit sheet name is Latin-1 in BIFF8; calamine 0.36 decodes it with the workbook's code page
    # (1251: Données → Donnйes), which would name the dataset. The workbook's own records say Données.
    src = write_xls(tmp_path / "cp1251.xls", {"Données": [["Titel", "Année"], ["x", 1]]}, codepage=1251)
    (out,) = convert_workbook(src, tmp_path / "out")
    assert (out.sheet, out.slug) == ("Données", "donnees")
    assert table(out.path) == {"Titel": ["x"], "Année": [1]}


@pytest.mark.parametrize("version", [2, 3, 4])
def test_excel_2_to_4_files_are_read(tmp_path: Path, version: int, caplog: pytest.LogCaptureFixture) -> None:
    # A BIFF2/3/4 stream without a compound file (ExcelDataReader's as3xls_BIFF2-4, POI's testEXCEL_3/4):
    # refused as "not a spreadsheet" before; xlrd reads them.
    rows = [["id", "name", "ok"], [1, "Zoë", True], [2.5, "b", False]]
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        (out,) = convert_workbook(write_biff(tmp_path / f"biff{version}.xls", version, rows), tmp_path / "out")
    assert table(out.path) == {"id": [1.0, 2.5], "name": ["Zoë", "b"], "ok": [True, False]}
    assert f"an Excel BIFF{version} file without a compound file" in caplog.text
