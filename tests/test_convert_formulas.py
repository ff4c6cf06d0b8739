"""Formulas are read as their cached values; a formula a tool saved without one (openpyxl, scripts,
some exporters) reads as empty, and the run says so, with where and what to do."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import xlsxwriter

from sheetdrop_contract.read_options import parse
from sheetdrop_step.converter import convert_workbook
from tests.workbooks.empty_text import typed_as_text


def test_formulas_without_cached_values_are_named_with_a_hint(tmp_path: Path) -> None:
    src = tmp_path / "computed.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Lines"
    sheet.append(["qty", "price", "total"])
    for r in range(2, 10):
        sheet.append([r, 2.5, f"=A{r}*B{r}"])
    book.save(src)
    out = convert_workbook(src, tmp_path / "out")[0]
    assert pq.read_table(out.path).column("total").to_pylist() == [None] * 8
    assert out.warnings == [
        "8 formula cells without a saved value (C2, C3, C4, C5, C6, …) read as empty: the tool that wrote the "
        "workbook did not calculate them; open it in Excel or LibreOffice, save it and upload it again"]


def test_cached_values_and_cached_empty_text_are_not_reported(tmp_path: Path) -> None:
    src = tmp_path / "cached.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["qty", "total", "label"])
    for r in range(1, 4):
        ws.write_number(r, 0, r)
        ws.write_formula(r, 1, f"=A{r + 1}*2", None, r * 2)
        ws.write_formula(r, 2, '=""', None, "")
    wb.close()
    typed_as_text(src)  # saved as Excel saves a formula whose value is empty text
    out = convert_workbook(src, tmp_path / "out")[0]
    assert pq.read_table(out.path).to_pydict() == {"qty": [1, 2, 3], "total": [2, 4, 6], "label": [None] * 3}
    assert out.warnings == []


def test_with_a_range_the_formulas_counted_are_the_tables_wherever_it_is(tmp_path: Path) -> None:
    # The table starts past the sheet's first MiB (a range points at it); a column of formulas beside
    # it, outside the range, is not the table's.
    src = tmp_path / "deep.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    for r in range(1, 30001):
        sheet.append([r, r * 2, r * 3, f"=A{r}*2"])
    sheet.append(["qty", "price", "total"])
    for r in range(30002, 30012):
        sheet.append([r, 2.5, f"=A{r}*B{r}"])
    book.save(src)
    chosen = parse('{"range": "A30001:C"}', "sheetdrop.json")
    out = convert_workbook(src, tmp_path / "out", options=chosen)[0]
    assert (out.rows, out.column_types["total"]) == (10, "string")
    assert out.warnings == [
        "10 formula cells without a saved value (C30002, C30003, C30004, C30005, C30006, …) read as empty: the tool "
        "that wrote the workbook did not calculate them; open it in Excel or LibreOffice, save it and upload it again"]
