"""One large sheet read in parts by several readers (convert_split):
the output must be byte-identical to the single reader's, whatever sits at or across a seam.

The split is forced with ``split_sheet_bytes=1`` (then each part holds about an eighth of the sheet);
each test checks from the log that the parts were merged (not the whole-read fallback).
"""

from __future__ import annotations

import datetime as dt
import logging
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xlsxwriter
from convert import convert_workbook

ROWS = 400  # enough rows for a seam in the middle of the data


def both(src: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, expect: str = "parts"):
    """Convert once whole and once split; assert identical files and outputs; return the split one."""
    whole = convert_workbook(src, tmp_path / "whole", split_sheet_bytes=1 << 40)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        halves = convert_workbook(src, tmp_path / "halves", split_sheet_bytes=1, workers=4)
    how = [r.getMessage() for r in caplog.records if "read in" in r.getMessage() or "read whole" in r.getMessage()]
    assert how and expect in how[0] and "read in 1 parts" not in how[0], how
    assert len(whole) == len(halves) == 1
    a, b = whole[0], halves[0]
    assert a.path.read_bytes() == b.path.read_bytes()
    assert {**a.__dict__, "path": None} == {**b.__dict__, "path": None}
    return b


def test_plain_sheet_merges_identically(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
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
    out = both(src, tmp_path, caplog)
    assert out.column_types == {"n": "int64", "x": "float64", "when": "timestamp", "ok": "bool",
                                "code": "string", "t": "string"}
    assert out.rows == ROWS
    assert pq.read_table(out.path).column("code").to_pylist()[:2] == ["00001", "00002"]


def test_text_in_the_last_row_of_a_numeric_column(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Numbers in the head, one text cell at the very end of the tail: the column is text
    # over the whole column, in both halves.
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
    out = both(src, tmp_path, caplog, expect="parts")
    assert out.column_types == {"n": "int64", "code": "string"}
    got = pq.read_table(out.path).to_pydict()
    assert got["code"][0] == "10" and got["code"][-1] == "X-17"


def test_int_or_float_is_decided_over_both_halves(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Whole numbers in the head, a fraction in the tail: both halves read floats, and
    # int64-or-float64 is decided on the merged column; times of day likewise.
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
    out = both(src, tmp_path, caplog)
    assert out.column_types == {"whole": "float64", "at": "time", "flag": "bool"}


def test_dates_then_plain_numbers_at_the_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Dates in the head, a few plain numbers at the end of the tail: the halves disagree,
    # and the column must come out as the single read decides it over the whole column.
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
    out = both(src, tmp_path, caplog, expect="parts")
    assert out.column_types["n"] == "int64"


def test_booleans_and_a_boolean_hidden_in_a_numeric_column(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "bools.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["ok", "v"])
    for r in range(1, ROWS + 1):
        ws.write_boolean(r, 0, r % 2 == 1)
        if r == ROWS - 1:
            ws.write_boolean(r, 1, True)  # calamine reads it as 1.0: needs the second read
        else:
            ws.write_number(r, 1, r)
    wb.close()
    out = both(src, tmp_path, caplog, expect="parts")
    assert out.column_types == {"ok": "bool", "v": "string"}
    assert pq.read_table(out.path).column("v").to_pylist()[-2] == "TRUE"


@pytest.mark.parametrize("styled_blank_below", [False, True])
def test_blank_rows_and_a_sparse_column_near_the_seam(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, styled_blank_below: bool
) -> None:
    # Blank rows around the middle, a column empty in the whole tail, leading empty rows
    # and a leading empty column before the header: rows and columns must line up exactly
    # as in the single read. A formatted empty cell far below (no value, but a row element)
    # makes the tail's row count disagree with its row numbers: then the original is read.
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
    out = both(src, tmp_path, caplog, expect="parts")
    got = pq.read_table(out.path).to_pydict()
    assert list(got) == ["a", "b", "only-head"]
    assert out.column_types == {"a": "int64", "b": "string", "only-head": "int64"}
    assert got["a"][0] == 4 and got["a"][-1] == ROWS + 3


def test_error_cells_and_shared_strings_1904(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Not constant_memory: strings go to the shared strings part, which both halves need;
    # a 1904 workbook's dates must come out the same from both halves.
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
    out = both(src, tmp_path, caplog)
    assert out.error_counts == {"day": 0, "ratio": 2, "city": 0}
    assert pq.read_table(out.path).column("day").to_pylist()[0] == dt.datetime(2000, 1, 2)


def test_more_than_one_sheet_is_not_split(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "two.xlsx"
    wb = xlsxwriter.Workbook(src)
    for name in ("A", "B"):
        ws = wb.add_worksheet(name)
        ws.write_column(0, 0, ["n", *range(ROWS)])
    wb.close()
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        outs = convert_workbook(src, tmp_path / "o", split_sheet_bytes=1)
    assert len(outs) == 2
    assert not [r for r in caplog.records if "parts" in r.getMessage()]


def test_reruns_of_a_split_sheet_are_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "d.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["a", "b"])
    for r in range(1, ROWS + 1):
        ws.write_row(r, 0, [r * 1.5, f"x{r % 10}"])
    wb.close()
    one = convert_workbook(src, tmp_path / "o1", split_sheet_bytes=1)[0]
    two = convert_workbook(src, tmp_path / "o2", split_sheet_bytes=1)[0]
    assert one.path.read_bytes() == two.path.read_bytes()


def test_parts_hold_consecutive_rows_between_sentinels(tmp_path: Path) -> None:
    # The seam mechanism, read back by openpyxl: each part holds the sheet's rows between two seams
    # (rows holding a value), with a sentinel row just outside them, so that every part's range starts
    # and ends on a known row; fed in 7-byte chunks, so that every element is cut somewhere.
    import openpyxl
    from convert_guard import quick_inspect
    from convert_split import PartWriter

    src = tmp_path / "rows.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet()
    for r in range(60):
        if r % 9 != 4:  # some rows without any cell
            ws.write_row(r, 1, [r, f"t{r}"])
    ws.write_blank(70, 1, None, wb.add_format({"bold": True}))  # a row element without a value
    wb.close()
    parts: list[Path] = []
    writer = PartWriter(src, quick_inspect(src), "xl/worksheets/sheet1.xml", tmp_path, 500, parts.append)
    with zipfile.ZipFile(src) as z:
        xml = z.read("xl/worksheets/sheet1.xml")
    for at in range(0, len(xml), 7):
        writer.feed(xml[at:at + 7])
    writer.finish()
    assert len(parts) > 3 and len(writer.seams) == len(parts) and writer.seams[-1] == -1
    original = {(c.row, c.column): c.value for row in openpyxl.load_workbook(src).active.iter_rows() for c in row
                if c.value is not None}
    joined: dict[tuple[int, int], object] = {}
    for k, part in enumerate(parts):
        cells = {(c.row, c.column): c.value for row in openpyxl.load_workbook(part).active.iter_rows() for c in row
                 if c.value is not None}
        if k:  # the previous seam: a sentinel, then this part's rows
            assert cells.pop((writer.seams[k - 1], 1)) == "-"
            assert min(r for r, _ in cells) > writer.seams[k - 1]
        if k < len(parts) - 1:  # this part's last row holds a value; the sentinel follows it
            assert cells.pop((writer.seams[k] + 1, 1)) == "-"
            assert max(r for r, _ in cells) == writer.seams[k]
        joined.update(cells)
    assert joined == original


# ---------------------------------------------------------------- guards with a split


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
    from convert import WorkbookRejected

    with pytest.raises(WorkbookRejected) as info:
        convert_workbook(src, out, split_sheet_bytes=1)
    assert not out.exists(), "no partial output on rejection"
    return info.value


def test_guards_still_reject_a_split_sheet(tmp_path: Path) -> None:
    good, sheet = _sheet_xlsx(tmp_path / "good.xlsx")
    # A cell at XFD1048576: the deep scan of the split sheet refuses the area.
    far = sheet.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>')
    err = _rejected(_replace_sheet(good, tmp_path / "far.xlsx", far), tmp_path / "o1")
    assert err.code == "too-large" and "cells" in err.reason
    # A DTD in the sheet's prolog.
    evil = sheet.replace(b"?>", b'?>\n<!DOCTYPE worksheet [<!ENTITY x "y">]>', 1)
    err = _rejected(_replace_sheet(good, tmp_path / "dtd.xlsx", evil), tmp_path / "o2")
    assert err.code == "unsafe" and "sheet1.xml" in err.reason


def test_a_sheet_that_lies_about_its_size_is_unsafe_with_the_head_reader_started(tmp_path: Path) -> None:
    # The headers declare the sheet's real size, but 64 MiB of padding follows the rows:
    # the head package is written (and its reader started) before the inflate runs past
    # the declared size; the rejection must still win and leave nothing behind.
    good, sheet = _sheet_xlsx(tmp_path / "good.xlsx")
    padded = sheet.replace(b"</sheetData>", b"</sheetData>" + b" " * (64 * 1024**2))
    src = _replace_sheet(good, tmp_path / "liar.xlsx", padded, declared=len(sheet))
    err = _rejected(src, tmp_path / "o")
    assert err.code == "unsafe" and "lies about its size" in err.reason
