"""xlsx packages written by tools other than Excel open like Excel's: entry names with backslashes, the
workbook part wherever ``_rels/.rels`` points (its relationships relative to it), and a ``<dimension>``
that claims the whole grid for a few cells (Gnumeric writes A1:XFD1048576) is judged by the cells.
Each must give exactly the tables of the same workbook as Excel would package it.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from sheetdrop_step.converter import convert_workbook


def canonical(path: Path) -> Path:
    wb = xlsxwriter.Workbook(path)
    fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    for name in ("Orders", "Notes"):
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, ["id", "city", "when"])
        for r in range(1, 30):
            ws.write_row(r, 0, [r, ["Paris", "Oslo"][r % 2]])
            ws.write_datetime(r, 2, dt.datetime(2024, 1, 1) + dt.timedelta(days=r), fmt)
    wb.close()
    return path


def repackage(src: Path, dst: Path, rename: Callable[[str], str], edit: Callable[[str, bytes], bytes]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(rename(info.filename), edit(info.filename, zin.read(info.filename)))
    return dst


def backslashes(src: Path, dst: Path) -> Path:
    return repackage(src, dst, lambda n: n.replace("/", "\\"), lambda n, d: d)


def workbook_elsewhere(src: Path, dst: Path) -> Path:
    """The workbook part at main/book.xml, its relationships next to it and relative to it."""
    moved = {"xl/workbook.xml": "main/book.xml", "xl/_rels/workbook.xml.rels": "main/_rels/book.xml.rels"}

    def edit(name: str, data: bytes) -> bytes:
        if name == "_rels/.rels":
            return data.replace(b'Target="xl/workbook.xml"', b'Target="main/book.xml"')
        if name == "[Content_Types].xml":
            return data.replace(b'"/xl/workbook.xml"', b'"/main/book.xml"')
        if name == "xl/_rels/workbook.xml.rels":
            return data.replace(b'Target="', b'Target="../xl/')
        return data

    return repackage(src, dst, lambda n: moved.get(n, n), edit)


def gnumeric_dimension(src: Path, dst: Path) -> Path:
    def edit(name: str, data: bytes) -> bytes:
        if name.startswith("xl/worksheets/"):
            return data.replace(b'<dimension ref="A1:C30"/>', b'<dimension ref="A1:XFD1048576"/>')
        return data

    return repackage(src, dst, lambda n: n, edit)


def all_three(src: Path, dst: Path) -> Path:
    step = workbook_elsewhere(gnumeric_dimension(src, dst.with_name("a.xlsx")), dst.with_name("b.xlsx"))
    return backslashes(step, dst)


@pytest.mark.parametrize("variant", [backslashes, workbook_elsewhere, gnumeric_dimension, all_three])
def test_tool_written_packages_convert_like_excel_s(tmp_path: Path, variant: Callable[[Path, Path], Path]) -> None:
    src = canonical(tmp_path / "excel.xlsx")
    other = variant(src, tmp_path / "other.xlsx")
    assert zipfile.ZipFile(other).read("[Content_Types].xml")
    if variant is gnumeric_dimension:
        assert b"A1:XFD1048576" in zipfile.ZipFile(other).read("xl/worksheets/sheet1.xml")
        assert openpyxl.load_workbook(other)["Orders"]["A2"].value == 1  # another reader opens it
    expected = convert_workbook(src, tmp_path / "expected")
    got = convert_workbook(other, tmp_path / "got")
    assert [(o.sheet, o.slug, o.column_types, o.rows) for o in got] == [
        (o.sheet, o.slug, o.column_types, o.rows) for o in expected]
    assert [o.sheet for o in got] == ["Orders", "Notes"]
    for a, b in zip(expected, got, strict=True):
        assert pq.read_table(a.path).equals(pq.read_table(b.path))
        assert pq.read_table(b.path).column("when").to_pylist()[0] == dt.datetime(2024, 1, 2)
