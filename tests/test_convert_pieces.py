"""A large sheet is parsed in pieces at once, cut at row starts as the scan inflates it, every piece
with the types its first rows chose: the pieces merged are the sheet read whole, to the byte."""

from __future__ import annotations

import datetime as dt
import logging
import re
import zipfile
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from sheetdrop_contract.read_options import parse
from sheetdrop_step.converter import Limits, WorkbookRejected, convert_workbook
from sheetdrop_step.converter._reading.pieces import SheetPieces

ROWS = 4000
LATE = 1200  # after the first 1000 rows, which choose the types


def _workbook(path: Path, inline: bool, rows: int = ROWS) -> Path:
    """Every row after LATE holds, within a row or two, each thing a seam must not change: text and
    booleans among numbers (the booleans silently read as numbers, caught by the counts), kinds
    alternating, error cells, blank rows; a column no early piece holds."""
    wb = xlsxwriter.Workbook(path, {"constant_memory": inline})
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws = wb.add_worksheet("Data")
    ws.write_row(0, 0, ["id", "amount", "late bool", "switch", "errors", "code"])
    for r in range(1, rows + 1):
        late = r > LATE
        if late and r % 7 == 0:
            continue  # a blank row
        ws.write_number(r, 0, r)
        ws.write_string(r, 1, "n/a") if late and r % 3 == 0 else ws.write_number(r, 1, r / 8)
        ws.write_boolean(r, 2, r % 2 == 0) if late and r % 3 == 1 else ws.write_number(r, 2, r)
        if late and r % 2:
            ws.write_datetime(r, 3, dt.datetime(2020, 1, 1) + dt.timedelta(days=r), day)
        else:
            ws.write_number(r, 3, r * 1.5)
        ws.write_formula(r, 4, "=1/0", None, "#DIV/0!") if late and r % 5 == 0 else ws.write_number(r, 4, r)
        ws.write_string(r, 5, f"{r % 50:05d}")
        if r > 3000:
            ws.write_string(r, 6, f"late {r % 10}")
    wb.close()
    return path


@pytest.mark.parametrize("inline", [False, True])  # shared strings, or strings in the sheet
def test_a_sheet_read_in_pieces_is_the_sheet_read_whole(tmp_path: Path, inline: bool,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    src = _workbook(tmp_path / "big.xlsx", inline)
    notes, warnings = {}, {}
    for how, size in (("whole", 1024**3), ("pieces", 1)):  # 1: pieces of four times the other parts
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
            out = convert_workbook(src, tmp_path / how, limits=Limits(piece_bytes=size), workers=2)[0]
        notes[how] = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        warnings[how] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings["whole"]) == 3 and warnings["pieces"] == warnings["whole"]  # the columns made text
    again = ("big.xlsx: sheet 'Data': columns A, B, C, D, E, F, G read again with every cell checked: the first "
             "1000 rows did not show every kind of cell they hold")
    assert notes["whole"] == [again]
    pieces = int(notes["pieces"][0].split("read in ")[1].split()[0])
    assert pieces >= 5 and notes["pieces"] == [f"big.xlsx: sheet 'Data': read in {pieces} pieces at once", again]
    assert (tmp_path / "pieces" / "data.parquet").read_bytes() == (tmp_path / "whole" / "data.parquet").read_bytes()

    table = pq.read_table(out.path)
    blank = {r for r in range(LATE + 1, ROWS + 1) if r % 7 == 0}  # rows between values stay, empty

    def column(value) -> list[object]:
        return [None if r in blank else value(r) for r in range(1, ROWS + 1)]

    assert out.column_types == {"id": "int64", "amount": "string", "late_bool": "string", "switch": "string",
                                "errors": "int64", "code": "string", "column_G": "string"}
    assert table.column("late_bool").to_pylist() == column(
        lambda r: ("TRUE" if r % 2 == 0 else "FALSE") if r > LATE and r % 3 == 1 else str(r))
    assert table.column("switch").to_pylist() == column(
        lambda r: str(dt.date(2020, 1, 1) + dt.timedelta(days=r)) if r > LATE and r % 2 else f"{r * 1.5:g}")
    assert table.column("errors").to_pylist() == column(lambda r: None if r > LATE and r % 5 == 0 else r)
    assert table.column("column_G").to_pylist() == column(lambda r: f"late {r % 10}" if r > 3000 else None)
    assert out.error_counts["errors"] == sum(1 for r in range(LATE + 1, ROWS + 1) if r % 5 == 0 and r not in blank)


def _pieces(xml: bytes, size: int, tmp: Path) -> tuple[list[tuple[int, bytes]], bool]:
    got: list[tuple[int, bytes]] = []

    def ready(piece) -> None:
        with zipfile.ZipFile(piece.path) as z:
            got.append((piece.first, z.read("s.xml")))

    cut = SheetPieces(lambda: b"", "s.xml", tmp / "piece.xlsx", size, ready)
    for at in range(0, len(xml), 7):  # chunks cut anywhere
        cut.feed(xml[at:at + 7])
    cut.finish()
    return got, cut.whole


HEAD = b'<?xml version="1.0"?><x:worksheet xmlns:x="main"><x:dimension ref="A1"/><x:sheetData>'
TAIL = b'</x:sheetData><x:rowBreaks count="1"><x:brk id="3"/></x:rowBreaks></x:worksheet>'


def _row(n: int | None) -> bytes:
    number = b"" if n is None else b' r="%d"' % n
    return b'<x:row spans="1:1"%s><x:c><x:v>%d</x:v></x:c></x:row>' % (number, n or 0)


def test_pieces_start_at_a_numbered_row_and_end_the_sheet(tmp_path: Path) -> None:
    # Pieces of 60 bytes and more; a row is 50-56 bytes.
    got, whole = _pieces(HEAD + b"".join(_row(n) for n in (1, 2, None, 4, 5, 6)) + TAIL, 60, tmp_path)
    closing = b"</x:sheetData></x:worksheet>"
    # A row without its number continues the count of the row before it: it never starts a piece.
    assert not whole and got == [(0, HEAD + _row(1) + _row(2) + _row(None) + closing),
                                 (3, HEAD + _row(4) + _row(5) + closing),
                                 (5, HEAD + _row(6) + TAIL)]  # the last keeps what follows the rows


@pytest.mark.parametrize(("rows", "written"), [((1, 2, 3, 5, 4, 6), 1), ((1, 2, 2, 3), 0)])
def test_rows_out_of_order_at_a_cut_leave_the_sheet_whole(tmp_path: Path, rows: tuple[int, ...], written: int) -> None:
    got, whole = _pieces(HEAD + b"".join(_row(n) for n in rows) + TAIL, 60, tmp_path)
    assert whole and len(got) == written  # the pieces written before are not used


def test_a_sheet_in_pieces_that_declares_entities_is_unsafe(tmp_path: Path) -> None:
    src = _workbook(tmp_path / "big.xlsx", inline=True)
    with zipfile.ZipFile(src) as z:
        parts = {i.filename: z.read(i) for i in z.infolist()}
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(
        b"?>", b'?>\n<!DOCTYPE worksheet [<!ENTITY x "y">]>', 1)
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    with pytest.raises(WorkbookRejected) as info:
        convert_workbook(src, tmp_path / "o", limits=Limits(piece_bytes=1), workers=2)
    assert info.value.code == "unsafe" and "sheet1.xml" in info.value.reason
    assert not (tmp_path / "o").exists()


def test_a_sheet_in_pieces_is_measured_as_if_read_whole(tmp_path: Path) -> None:
    # Past the first MiB (which the head's check measures: 5,000 rows x 7), the sheet is 8001 x 7 cells.
    src = _workbook(tmp_path / "big.xlsx", inline=True, rows=8000)
    refused = set()
    for size in (1024**3, 1):
        with pytest.raises(WorkbookRejected) as info:
            convert_workbook(src, tmp_path / "o", limits=Limits(piece_bytes=size, max_cells=50_000), workers=2)
        refused.add((info.value.code, info.value.reason))
    assert refused == {("too-large", "sheet 'Data' spans 8001 rows x 7 columns (56,007 cells), above the 50,000-cell "
                                     "limit; delete stray cells far from the data (Ctrl+End shows the last one) and "
                                     "save again")}


def test_a_report_read_in_pieces_keeps_its_header_merges_and_formula_warnings(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    # What only the whole sheet's XML tells (merged cells after the rows, formulas without a value)
    # comes from the cutter when the scan leaves the sheet to it.
    src = tmp_path / "report.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["A1"] = "Units by region"
    sheet["B3"] = "Units"
    sheet.merge_cells("B3:C3")
    sheet.append(["Region", "Jul", "Aug", "total"])
    for r in range(5, ROWS + 5):
        sheet.append([f"region {r % 9}", r, r * 2, f"=B{r}+C{r}"])
    book.save(src)
    options = parse('{"header_rows": 2}', "sheetdrop.json")
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        outs = {how: convert_workbook(src, tmp_path / how, limits=Limits(piece_bytes=size), workers=2,
                                      options=options)[0] for how, size in (("whole", 1024**3), ("pieces", 1))}
    assert any("read in" in r.getMessage() and "pieces at once" in r.getMessage() for r in caplog.records)
    assert outs["pieces"].path.read_bytes() == outs["whole"].path.read_bytes()
    out = outs["pieces"]
    assert out.header == "header in rows 3-4 (joined); title row 1 skipped"
    assert list(pq.read_table(out.path).to_pydict()) == ["Region", "Units_Jul", "Units_Aug", "total"]
    assert out.warnings == [
        f"{ROWS} formula cells without a saved value (D5, D6, D7, D8, D9, …) read as empty: the tool that wrote "
        "the workbook did not calculate them; open it in Excel or LibreOffice, save it and upload it again"]


def test_a_row_out_of_order_at_the_start_of_a_piece_is_not_lost(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                ) -> None:
    # Rows P+1, P where a piece starts at P+1: row P would be the piece's header row (the row before
    # it, which a piece lacks) and vanish; the sheet is read whole instead.
    src = tmp_path / "ids.xlsx"
    wb = xlsxwriter.Workbook(src)
    ws = wb.add_worksheet("Data")
    ws.write_row(0, 0, ["id", "v"])
    for r in range(1, 6001):
        ws.write_row(r, 0, [r, 7])
    wb.close()
    with zipfile.ZipFile(src) as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    xml = parts["xl/worksheets/sheet1.xml"]
    size = 4 * sum(len(data) for name, data in parts.items() if not name.startswith("xl/worksheets/"))
    firsts: list[int] = []
    cut = SheetPieces(lambda: b"", "xl/worksheets/sheet1.xml", tmp_path / "p.xlsx", size,
                      lambda piece: (firsts.append(piece.first), piece.path.unlink()))
    cut.feed(xml)
    cut.finish()
    at = firsts[2] + 1  # the row (from 1) the third piece starts at
    this, after = (re.search(rb'<row r="%d".*?</row>' % n, xml)[0] for n in (at, at + 1))
    parts["xl/worksheets/sheet1.xml"] = xml.replace(this + after, after + this)
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    with caplog.at_level(logging.INFO, logger="sheetdrop.convert"):
        out = convert_workbook(src, tmp_path / "out", limits=Limits(piece_bytes=1), workers=2)[0]
    ids = pq.read_table(out.path).column("id").to_pylist()
    assert sorted(ids) == list(range(1, 6001)) and out.null_counts == {"id": 0, "v": 0}
    # The cut falls before row at + 1, which now comes first: row at is then right after the cut.
    assert f"ids.xlsx: sheet 'Data' read whole: row {at} is in the piece that starts at row {at + 1}: rows out of " \
           "order" in [r.getMessage() for r in caplog.records]


def test_a_column_of_numbers_and_codes_in_pieces_is_the_column_read_whole(tmp_path: Path) -> None:
    # A column that mixes numbers and codes from its first rows is read with every cell reported, its
    # numbers then taken as its values; a piece where it holds nothing, or only codes, must agree.
    src = tmp_path / "ids.xlsx"
    wb = xlsxwriter.Workbook(src, {"constant_memory": True})
    ws = wb.add_worksheet("Ids")
    ws.write_row(0, 0, ["id", "amount", "note"])
    for r in range(1, ROWS + 1):
        if r < 1500 or r > 2500:  # rows 1500-2500: no id at all (a piece or more)
            ws.write_number(r, 0, r) if r % 2 and r < 3000 else ws.write_string(r, 0, f"{r:06d}")
        ws.write_string(r, 1, "n/a") if r == ROWS - 7 else ws.write_number(r, 1, r / 4)
        ws.write_string(r, 2, "x" * 40)
    wb.close()
    for how, size in (("whole", 1024**3), ("pieces", 1)):
        out = convert_workbook(src, tmp_path / how, limits=Limits(piece_bytes=size), workers=2)[0]
    assert (tmp_path / "pieces" / "ids.parquet").read_bytes() == (tmp_path / "whole" / "ids.parquet").read_bytes()
    table = pq.read_table(out.path)
    assert out.column_types["id"] == "string" and out.column_types["amount"] == "string"
    assert table.column("id").to_pylist()[:4] == ["1", "000002", "3", "000004"]
    assert table.column("id").to_pylist()[1600] is None and table.column("id").to_pylist()[3100] == "003101"
