"""A sheet without a value (nothing but formatting, empty text or error cells) writes no file: it is
skipped like an empty sheet, and a workbook of nothing else is rejected as empty."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import xlsxwriter

from sheetdrop_step.converter import WorkbookRejected, convert_workbook
from tests.workbooks.empty_text import typed_as_text


def workbook(path: Path, with_data: bool) -> Path:
    wb = xlsxwriter.Workbook(path)
    styled = wb.add_worksheet("Styled")
    styled.write_blank(0, 0, None, wb.add_format({"bold": True}))
    styled.set_column(0, 5, 20, wb.add_format({"num_format": "0.00"}))
    blanks = wb.add_worksheet("Blanks")
    for r in range(3):
        blanks.write_formula(r, 0, '=""', None, "")
        blanks.write_formula(r, 1, "=1/0", None, "#DIV/0!")
    if with_data:
        wb.add_worksheet("Data").write_column(0, 0, ["n", 1, 2])
    wb.close()
    return typed_as_text(path)


def test_sheets_without_values_write_no_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        outs = convert_workbook(workbook(tmp_path / "some.xlsx", True), tmp_path / "out")
    assert [o.sheet for o in outs] == ["Data"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.parquet"]
    assert [r.getMessage() for r in caplog.records] == [
        "skipped sheet 'Styled' of some.xlsx: empty", "skipped sheet 'Blanks' of some.xlsx: empty"]


def test_a_workbook_of_sheets_without_values_is_empty(tmp_path: Path) -> None:
    with pytest.raises(WorkbookRejected) as info:
        convert_workbook(workbook(tmp_path / "none.xlsx", False), tmp_path / "out")
    assert (info.value.code, info.value.reason) == (
        "empty", "the workbook has no visible worksheet with data ('Styled': empty; 'Blanks': empty)")
    assert not (tmp_path / "out").exists()
