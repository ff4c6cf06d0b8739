"""Types are decided over the whole column: a sheet's first 1,000 rows choose how each column is read
(``_reading.head``), and whatever sits after them must still come out as the column rules say. Each
sheet here puts something after those rows; every conversion is run twice, byte-identical.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xlsxwriter

from sheetdrop_step.converter import convert_workbook

ROWS = 1400  # past the first 1,000 rows, which choose how each column is read


def both(src: Path, tmp_path: Path):
    """Convert twice; assert identical files and outputs; return one."""
    first = convert_workbook(src, tmp_path / "first")
    again = convert_workbook(src, tmp_path / "again")
    assert len(first) == len(again) == 1
    a, b = first[0], again[0]
    assert a.path.read_bytes() == b.path.read_bytes()
    assert {**a.__dict__, "path": None} == {**b.__dict__, "path": None}
    return b


def test_plain_sheet(tmp_path: Path) -> None:
    src = tmp_path / "plain.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    dfmt = wb.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    ws.write_row(0, 0, ["n", "x", "when", "ok", "code", "t"])
    for r in range(1, ROWS + 1):
        ws.write_number(r, 0, r)
        ws.write_number(r, 1, r / 3)
        ws.write_datetime(r, 2, dt.datetime(2020, 1, 1) + dt.timedelta(hours=r), dfmt)
        ws.write_boolean(r, 3, r % 3 == 0)
        ws.write_string(r, 4, f"{r:05d}")
        ws.write_string(r, 5, "" if r % 7 else "seven")
    wb.close()
    out = both(src, tmp_path)
    assert out.column_types == {"n": "int64", "x": "float64", "when": "timestamp", "ok": "bool",
                                "code": "string", "t": "string"}
    assert out.rows == ROWS
    assert pq.read_table(out.path).column("code").to_pylist()[:2] == ["00001", "00002"]


def test_text_in_the_last_row_of_a_numeric_column(tmp_path: Path) -> None:
    # Numbers in the first rows, one text cell at the very end: the column is text, every cell of it.
    src = tmp_path / "late.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["n", "code"])
    for r in range(1, ROWS + 1):
        ws.write_number(r, 0, r)
        if r == ROWS:
            ws.write_string(r, 1, "X-17")
        else:
            ws.write_number(r, 1, r * 10)
    wb.close()
    out = both(src, tmp_path)
    assert out.column_types == {"n": "int64", "code": "string"}
    got = pq.read_table(out.path).to_pydict()
    assert got["code"][0] == "10" and got["code"][-1] == "X-17"


def test_int_or_float_is_decided_over_the_whole_column(tmp_path: Path) -> None:
    # Whole numbers in the first rows, fractions at the end: float64; times of day likewise decided
    # over the whole column.
    src = tmp_path / "kinds.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    tfmt = wb.add_format({"num_format": "hh:mm"})
    ws.write_row(0, 0, ["whole", "at", "flag"])
    for r in range(1, ROWS + 1):
        ws.write_number(r, 0, r if r < ROWS - 5 else r + 0.5)
        ws.write_datetime(r, 1, dt.datetime(1900, 1, 1, r % 24, 0) if r < ROWS else dt.time(3, 0), tfmt)
        ws.write_boolean(r, 2, r % 2 == 0)
    wb.close()
    out = both(src, tmp_path)
    assert out.column_types == {"whole": "float64", "at": "time", "flag": "bool"}


def test_dates_then_plain_numbers_at_the_end(tmp_path: Path) -> None:
    # Dates in the first rows, a few plain numbers at the end: the column is text (a date column is
    # read so that a number in it is reported, never taken for a date).
    src = tmp_path / "dates.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    dfmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, ["when", "n"])
    for r in range(1, ROWS + 1):
        if r < ROWS - 3:
            ws.write_datetime(r, 0, dt.datetime(2021, 1, 1) + dt.timedelta(days=r), dfmt)
        else:
            ws.write_number(r, 0, r)
        ws.write_number(r, 1, r)
    wb.close()
    out = both(src, tmp_path)
    assert out.column_types == {"when": "string", "n": "int64"}
    got = pq.read_table(out.path).column("when").to_pylist()
    assert got[0] == "2021-01-02" and got[-1] == str(ROWS)


def test_booleans_and_a_boolean_hidden_in_a_numeric_column(tmp_path: Path) -> None:
    src = tmp_path / "bools.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["ok", "v"])
    for r in range(1, ROWS + 1):
        ws.write_boolean(r, 0, r % 2 == 1)
        if r == ROWS - 1:
            ws.write_boolean(r, 1, True)  # read as 1.0 in a float column: the scan's counts catch it
        else:
            ws.write_number(r, 1, r)
    wb.close()
    out = both(src, tmp_path)
    assert out.column_types == {"ok": "bool", "v": "string"}
    assert pq.read_table(out.path).column("v").to_pylist()[-2] == "TRUE"


@pytest.mark.parametrize("styled_blank_below", [False, True])
def test_blank_rows_and_a_sparse_column_near_the_seam(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, styled_blank_below: bool
) -> None:
    # Blank rows around the middle, a column empty after its first rows, leading empty rows and a
    # leading empty column before the header; a formatted empty cell far below (a row element without
    # a value) is no row of data.
    src = tmp_path / "blank.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(3, 1, ["a", "b", "only-head"])
    for r in range(4, ROWS + 4):
        if ROWS // 2 - 10 < r < ROWS // 2 + 10 and r % 3:
            continue  # blank rows scattered around the seam
        ws.write_number(r, 1, r)
        ws.write_string(r, 2, f"s{r}")
        if r < ROWS // 3:
            ws.write_number(r, 3, r * 2)
    if styled_blank_below:
        ws.write_blank(ROWS + 10, 1, None, wb.add_format({"bold": True}))
    wb.close()
    out = both(src, tmp_path)
    got = pq.read_table(out.path).to_pydict()
    assert list(got) == ["a", "b", "only-head"]
    assert out.column_types == {"a": "int64", "b": "string", "only-head": "int64"}
    assert got["a"][0] == 4 and got["a"][-1] == ROWS + 3


def test_error_cells_and_shared_strings_1904(tmp_path: Path) -> None:
    # Not constant_memory: strings go to the shared strings part; a 1904 workbook's dates, error cells
    # in the first rows and after them.
    src = tmp_path / "mac.xlsx"
    wb = xlsxwriter.Workbook(src, {"date_1904": True})
    ws = wb.add_worksheet()
    dfmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, ["day", "ratio", "city"])
    for r in range(1, ROWS + 1):
        ws.write_datetime(r, 0, dt.datetime(2000, 1, 1) + dt.timedelta(days=r), dfmt)
        if r in (5, ROWS - 2):
            ws.write_formula(r, 1, "=1/0", None, "#DIV/0!")
        else:
            ws.write_number(r, 1, r / 4)
        ws.write_string(r, 2, ["Paris", "Lyon", "Oslo"][r % 3])
    wb.close()
    assert b"sharedStrings" in zipfile.ZipFile(src).read("[Content_Types].xml")
    out = both(src, tmp_path)
    assert out.error_counts == {"day": 0, "ratio": 2, "city": 0}
    assert pq.read_table(out.path).column("day").to_pylist()[0] == dt.datetime(2000, 1, 2)


def test_reruns_are_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "d.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["a", "b"])
    for r in range(1, ROWS + 1):
        ws.write_row(r, 0, [r * 1.5, f"x{r % 10}"])
    wb.close()
    one = convert_workbook(src, tmp_path / "o1")[0]
    two = convert_workbook(src, tmp_path / "o2")[0]
    assert one.path.read_bytes() == two.path.read_bytes()


# ---------------------------------------------------------------- guards on a large sheet


def _sheet_xlsx(path: Path) -> tuple[Path, bytes]:
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["a", "b"])
    for r in range(1, ROWS + 1):
        ws.write_row(r, 0, [r, f"x{r}"])
    wb.close()
    with zipfile.ZipFile(path) as z:
        return path, z.read("xl/worksheets/sheet1.xml")


def _replace_sheet(src: Path, dst: Path, sheet: bytes, declared: int | None = None) -> Path:
    """``src`` with another sheet XML; ``declared`` overrides the size both zip headers give."""
    import struct

    name = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, sheet if info.filename == name else zin.read(info.filename))
    if declared is not None:
        blob = bytearray(dst.read_bytes())
        with zipfile.ZipFile(dst) as z:
            struct.pack_into("<L", blob, z.getinfo(name).header_offset + 22, declared)
        at = blob.find(b"PK\x01\x02")
        while at >= 0:
            length = struct.unpack_from("<H", blob, at + 28)[0]
            if blob[at + 46: at + 46 + length] == name.encode():
                struct.pack_into("<L", blob, at + 24, declared)
            at = blob.find(b"PK\x01\x02", at + 4)
        dst.write_bytes(bytes(blob))
    return dst


def _rejected(src: Path, out: Path):
    from sheetdrop_step.converter import WorkbookRejected

    with pytest.raises(WorkbookRejected) as info:
        convert_workbook(src, out)
    assert not out.exists(), "no partial output on rejection"
    return info.value


def test_guards_reject_while_the_sheet_is_read(tmp_path: Path) -> None:
    good, sheet = _sheet_xlsx(tmp_path / "good.xlsx")
    # A cell at XFD1048576: refused by the area check.
    far = sheet.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>')
    err = _rejected(_replace_sheet(good, tmp_path / "far.xlsx", far), tmp_path / "o1")
    assert err.code == "too-large" and "cells" in err.reason
    # A DTD in the sheet's prolog.
    evil = sheet.replace(b"?>", b'?>\n<!DOCTYPE worksheet [<!ENTITY x "y">]>', 1)
    err = _rejected(_replace_sheet(good, tmp_path / "dtd.xlsx", evil), tmp_path / "o2")
    assert err.code == "unsafe" and "sheet1.xml" in err.reason


def test_a_sheet_that_lies_about_its_size_is_unsafe_with_the_reader_started(tmp_path: Path) -> None:
    # The headers declare the sheet's real size, but 64 MiB of padding follows the rows: the reader
    # has started before the scan inflates past the declared size; the rejection must still win and
    # leave nothing behind.
    good, sheet = _sheet_xlsx(tmp_path / "good.xlsx")
    padded = sheet.replace(b"</sheetData>", b"</sheetData>" + b" " * (64 * 1024**2))
    src = _replace_sheet(good, tmp_path / "liar.xlsx", padded, declared=len(sheet))
    err = _rejected(src, tmp_path / "o")
    assert err.code == "unsafe" and "lies about its size" in err.reason
