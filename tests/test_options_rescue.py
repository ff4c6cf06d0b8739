"""``"mixed_columns": "rescue"``: a column of several kinds keeps the type of its majority, and the cells
that do not fit it go, with their column and their text, into ``_rescued_data``; every cell fits
text, so a column of mostly text stays text. The default (``text``) makes such a column text and
names the cells that did it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import xlsxwriter

from sheetdrop_contract.read_options import parse
from sheetdrop_step.converter import convert_workbook


def mixed(path: Path) -> Path:
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Orders")
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, ["Amount", "Shipped", "Status"])
    for r in range(1, 6):
        ws.write_number(r, 0, r * 10.5)
        ws.write_datetime(r, 1, dt.datetime(2026, 7, r), day)
        ws.write_string(r, 2, "open")
    ws.write_string(3, 0, "n/a")
    ws.write_string(5, 1, "TBD")
    ws.write_number(4, 2, 42)
    wb.close()
    return path


def test_rescue_keeps_the_majority_type_and_the_odd_cells(tmp_path: Path) -> None:
    src = mixed(tmp_path / "orders.xlsx")
    out = convert_workbook(src, tmp_path / "out", options=parse('{"mixed_columns": "rescue"}', "sheetdrop.json"))[0]
    assert out.column_types == {"Amount": "float64", "Shipped": "timestamp", "Status": "string",
                                "_rescued_data": "string"}
    got = pq.read_table(out.path).to_pydict()
    assert got == {
        "Amount": [10.5, 21.0, None, 42.0, 52.5],
        "Shipped": [dt.datetime(2026, 7, d) for d in range(1, 5)] + [None],
        "Status": ["open", "open", "open", "42", "open"],
        "_rescued_data": [None, None, '{"Amount": "n/a"}', None, '{"Shipped": "TBD"}']}
    assert [json.loads(v) for v in got["_rescued_data"] if v] == [{"Amount": "n/a"}, {"Shipped": "TBD"}]
    assert out.rescued == {"Amount": 1, "Shipped": 1}
    assert out.warnings == [
        "column Amount (A): 1 cell did not fit float64 and is in _rescued_data (A4 'n/a')",
        "column Shipped (B): 1 cell did not fit timestamp and is in _rescued_data (B6 'TBD')"]


def test_by_default_such_columns_are_text_and_the_cells_that_made_them_text_are_named(tmp_path: Path) -> None:
    src = mixed(tmp_path / "orders.xlsx")
    out = convert_workbook(src, tmp_path / "out")[0]
    assert out.column_types == {"Amount": "string", "Shipped": "string", "Status": "string"}
    assert pq.read_table(out.path).to_pydict()["Amount"] == ["10.5", "21", "n/a", "42", "52.5"]
    assert out.warnings == [
        "column Amount (A) became text: 1 of 5 cells is not a number (A4 'n/a'); \"mixed_columns\": \"rescue\" "
        "keeps its type and moves them to _rescued_data",
        "column Shipped (B) became text: 1 of 5 cells is not a date (B6 'TBD'); \"mixed_columns\": \"rescue\" "
        "keeps its type and moves them to _rescued_data"]


def test_rescue_keeps_its_kind_only_so_text_keeps_its_leading_zeros(tmp_path: Path) -> None:
    src = tmp_path / "codes.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["Code", "Flag"])
    for r, (code, flag) in enumerate([(1, True), (2, False), ("00123", "TRUE"), (4, True)], start=1):
        ws.write(r, 0, code)
        ws.write(r, 1, flag)
    wb.close()
    out = convert_workbook(src, tmp_path / "out", options=parse('{"mixed_columns": "rescue"}', "sheetdrop.json"))[0]
    assert pq.read_table(out.path).to_pydict() == {
        "Code": [1, 2, None, 4], "Flag": [True, False, None, True],
        "_rescued_data": [None, None, '{"Code": "00123", "Flag": "TRUE"}', None]}


def test_the_cells_that_made_a_date_column_text_are_named_when_they_are_times_of_day(tmp_path: Path) -> None:
    src = tmp_path / "when.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_string(0, 0, "When")
    for r in range(1, 4):
        ws.write_datetime(r, 0, dt.datetime(2026, 7, r), wb.add_format({"num_format": "yyyy-mm-dd"}))
    ws.write_datetime(4, 0, dt.time(9, 30), wb.add_format({"num_format": "hh:mm"}))
    wb.close()
    out = convert_workbook(src, tmp_path / "out")[0]
    assert out.warnings == [
        "column When (A) became text: 1 of 4 cells is not a date (A5 '09:30:00'); \"mixed_columns\": \"rescue\" "
        "keeps its type and moves them to _rescued_data"]
