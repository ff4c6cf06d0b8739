"""The header is the first row holding a value that is not empty text; its cells name the columns,
whatever their kind; columns with neither a name nor data before the first named one are dropped."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import xlsxwriter

from sheetdrop_step.converter import convert_workbook
from tests.workbooks.empty_text import typed_as_text


def test_a_row_of_empty_text_is_not_the_header(tmp_path: Path) -> None:
    # Formulas that return "" are text cells holding nothing: a person sees an empty row.
    src = tmp_path / "blank.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_formula(0, 0, '=""', None, "")
    ws.write_formula(1, 1, '=""', None, "")
    ws.write_row(2, 0, ["id", "name"])
    ws.write_row(3, 0, [1, "a"])
    ws.write_row(4, 0, [2, "b"])
    wb.close()
    assert b'<c r="A1" t="str"><f>""</f><v></v></c>' in zipfile.ZipFile(typed_as_text(src)).read(
        "xl/worksheets/sheet1.xml")
    out = convert_workbook(src, tmp_path / "out")[0]
    assert pq.read_table(out.path).to_pydict() == {"id": [1, 2], "name": ["a", "b"]}
    assert out.column_types == {"id": "int64", "name": "string"}


def test_date_bool_and_number_header_cells_keep_their_value(tmp_path: Path) -> None:
    src = tmp_path / "names.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    stamp = wb.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    ws.write_string(0, 0, "id")
    ws.write_datetime(0, 1, dt.datetime(2021, 1, 2), day)
    ws.write_datetime(0, 2, dt.datetime(2021, 1, 2, 3, 4, 5), stamp)
    ws.write_boolean(0, 3, True)
    ws.write_number(0, 4, 2021)
    ws.write_number(0, 5, 0.5)
    ws.write_formula(0, 6, "=1/0", None, "#DIV/0!")  # an error is no name
    ws.write_row(1, 0, [1, 10, 20, 30, 40, 50, 60])
    wb.close()
    out = convert_workbook(src, tmp_path / "out")[0]
    # Names are made safe for Spark as any name is (space and "." become "_").
    assert list(pq.read_table(out.path).to_pydict()) == [
        "id", "2021-01-02", "2021-01-02_03:04:05", "TRUE", "2021", "0_5", "column_G"]


def test_leading_empty_columns_are_dropped(tmp_path: Path) -> None:
    # 26 columns of formulas returning "" before the data, which starts in column AA.
    src = tmp_path / "wide.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    for col in range(26):
        for row in range(4):
            ws.write_formula(row, col, '=""', None, "")
    ws.write_row(0, 26, ["id", "v"])
    ws.write_row(1, 26, [1, "x"])
    ws.write_row(2, 26, [2, "y"])
    ws.write_formula(3, 27, '=""', None, "")
    wb.close()
    out = convert_workbook(typed_as_text(src), tmp_path / "out")[0]
    assert pq.read_table(out.path).to_pydict() == {"id": [1, 2], "v": ["x", "y"]}
    assert out.rows == 2  # the row of "" below is not data either
