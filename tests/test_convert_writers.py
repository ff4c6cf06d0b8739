"""Workbooks as other tools write them read as Excel's own would: packages laid out otherwise (parts at the
zip root, in another folder, with backslashes and in other letter cases) keep their number formats and
shared strings; macro and dialog sheets are skipped like chart sheets; ISO 8601 date cells (openpyxl's
``t="d"``) hold dates, date-times and times of day; the 1904 date system holds beside an extension's
``workbookPr``; a title block whose blank row holds only spaces, over a header that repeats a group's
names, is still a title block. Each workbook is written part by part (``tests/workbooks/make_xlsx.py``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sheetdrop_step.converter import WorkbookRejected, convert_workbook
from tests.workbooks.make_ods import Raw as OdsCell
from tests.workbooks.make_ods import write_ods
from tests.workbooks.make_xlsx import Package, Raw, Sheet, row, write_xlsx

LAYOUTS = {
    "excel": Package(),
    "zip root": Package(folder=""),  # the Los Angeles arrests export (readxl), ExcelDataReader's 629
    "other folder": Package(folder="wtf/"),  # SheetJS's wtf_path
    "backslashes, lower case": Package(backslashes=True, lower=True, content_types="[content_types].xml"),  # POI 49609
}


def shared(i: int) -> Raw:
    return Raw(f"<v>{i}</v>", ' t="s"')


def arrests(path: Path, package: Package) -> Path:
    """A date column that becomes text (one text cell in it) and shared strings: the dates must show as
    dates, which only the styles say, and the names come from the shared strings."""
    data = row(1, [shared(0), shared(1), shared(2)])
    data += row(2, [4894831, 31103, shared(3)], styles={1: 1})
    data += row(3, [4894832, 31940, shared(3)], styles={1: 1})
    data += row(4, [4894833, shared(4), shared(3)], styles={1: 1})
    return write_xlsx(path, [Sheet("Sheet1", data)], formats=["mm/dd/yyyy"], package=package,
                      shared=["BKG_NUM", "DOB", "SEX", "M", "unknown"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_package_laid_out_by_another_tool_keeps_its_formats_and_strings(tmp_path: Path, layout: str) -> None:
    (out,) = convert_workbook(arrests(tmp_path / "arrests.xlsx", LAYOUTS[layout]), tmp_path / "out")
    table = pq.read_table(out.path)
    assert table.to_pydict() == {"BKG_NUM": [4894831, 4894832, 4894833],
                                 "DOB": ["1985-02-25", "1987-06-12", "unknown"], "SEX": ["M", "M", "M"]}


def test_macro_and_dialog_sheets_are_skipped_like_chart_sheets(tmp_path: Path) -> None:
    # SheetJS's BlankSheetTypes.xlsm: a worksheet, a chart sheet, a macro sheet (xl/macrosheets) and a
    # dialog sheet; the reader refuses a workbook with a macro sheet in it.
    sheets = [Sheet("Sheet1", row(1, ["id", "name"]) + row(2, [1, "a"])), Sheet("Chart1", kind="chartsheet"),
              Sheet("Macro1", row(1, ["=HALT()"]), kind="macrosheet"), Sheet("Dialog1", kind="dialogsheet")]
    out = convert_workbook(write_xlsx(tmp_path / "kinds.xlsm", sheets), tmp_path / "out")
    assert [o.sheet for o in out] == ["Sheet1"] and pq.read_table(out[0].path).to_pydict() == {
        "id": [1], "name": ["a"]}
    assert out.skipped == [("Chart1", "chart sheet"), ("Macro1", "macro sheet"), ("Dialog1", "dialog sheet")]
    # With the worksheet blank, nothing is left: empty, naming each sheet and why.
    sheets[0] = Sheet("Sheet1")
    with pytest.raises(WorkbookRejected) as caught:
        convert_workbook(write_xlsx(tmp_path / "blank.xlsm", sheets), tmp_path / "blank")
    assert caught.value.code == "empty" and "'Macro1': macro sheet" in caught.value.reason


def iso(text: str) -> Raw:
    return Raw(f"<v>{text}</v>", ' t="d"')


@pytest.mark.parametrize("date1904", [False, True])
def test_iso_date_cells_hold_dates_date_times_and_times_of_day(tmp_path: Path, date1904: bool) -> None:
    # openpyxl's ISO 8601 cells (calamine's date_iso.xlsx): a time of day alone made the parse fail.
    data = row(1, ["when", "at", "mixed"])
    data += row(2, [iso("2021-01-01"), iso("10:10:10"), iso("10:10:10")])
    data += row(3, [iso("2021-01-02T10:10:10"), iso("23:59:59.5"), "n/a"])
    data += row(4, [iso("2021-01-03T00:00:00.250"), iso("00:00:01"), iso("2021-01-01")])
    src = write_xlsx(tmp_path / "iso.xlsx", [Sheet("S", data)], formats=["yyyy-mm-dd", "hh:mm:ss"],
                     workbook_pr='date1904="1"' if date1904 else "")
    (out,) = convert_workbook(src, tmp_path / "out")
    table = pq.read_table(out.path)
    assert [str(t) for t in table.schema.types] == ["timestamp[us]", "time64[us]", "string"]
    assert table.to_pydict() == {
        "when": [dt.datetime(2021, 1, 1), dt.datetime(2021, 1, 2, 10, 10, 10),
                 dt.datetime(2021, 1, 3, 0, 0, 0, 250_000)],
        "at": [dt.time(10, 10, 10), dt.time(23, 59, 59, 500000), dt.time(0, 0, 1)],
        "mixed": ["10:10:10", "n/a", "2021-01-01"]}


def test_the_1904_date_system_holds_beside_an_extension_s_workbook_properties(tmp_path: Path) -> None:
    # What Excel writes (readxl's types.xlsx, SheetJS's 1904.xlsx): date1904="1", then in extLst an
    # x15:workbookPr without it, which was read as the 1900 system: every date 4 years and a day early.
    ext = ('<ext uri="{140A7094-0E35-4892-8432-C4D2E57EDEB5}" '
           'xmlns:x15="http://schemas.microsoft.com/office/spreadsheetml/2010/11/main">'
           '<x15:workbookPr chartTrackingRefBase="1"/></ext>')
    data = row(1, ["name", "born", 41331, "spent"], styles={2: 1})
    data += row(2, ["a", 41331, "x", 1.5], styles={1: 1, 3: 3})
    data += row(3, ["b", 0.5, 41331, 41331], styles={1: 2, 2: 1, 3: 1})
    src = write_xlsx(tmp_path / "1904.xlsx", [Sheet("S", data)], formats=["yyyy-mm-dd", "hh:mm", "[h]:mm:ss"],
                     workbook_pr='date1904="1"', workbook_ext=ext)
    (out,) = convert_workbook(src, tmp_path / "out")
    table = pq.read_table(out.path)
    assert table.column_names == ["name", "born", "2017-02-27", "spent"]  # a date header, as Excel shows it
    assert table.column("born").to_pylist() == ["2017-02-27", "12:00:00"]  # a date and a time of day: text
    assert table.column("2017-02-27").to_pylist() == ["x", "2017-02-27"]
    # A date beside a duration, which the reader reports with its own idea of the date system (1900 here).
    assert table.column("spent").to_pylist() == ["36:00:00", "2017-02-27"]


@pytest.mark.parametrize("names", [["BKG_NUM", "SEX", "CHARGE", "BAIL", "CHG_DESC"],
                                   ["BKG_NUM", "SEX", "CHARGE", "BAIL", "CHARGE", "BAIL"]])
def test_a_blank_row_of_spaces_still_separates_a_title_from_its_header(tmp_path: Path, names: list[str]) -> None:
    # The Los Angeles arrests export: a title, a row whose one cell holds two spaces (xml:space="preserve"),
    # then the header (whose charge columns repeat for each charge), over text. Taken for a title row, the
    # spaces left no empty row between title and header: the title became the header, every column text.
    data = row(1, ["ARREST BOOKINGS for 01/30/17"]) + row(2, ["  "]) + row(3, names)
    data += row(4, ["4894831", "M", "23153(A)VC", "100000.00", "FELONY DUI", None])
    data += row(5, ["4894832", "M", "243(E)(1)PC", "20000.00", "12022.1PC", "5000.00"])
    (out,) = convert_workbook(write_xlsx(tmp_path / "arrests.xlsx", [Sheet("Sheet1", data)]), tmp_path / "out")
    table = pq.read_table(out.path)
    assert out.header == "header in row 3; title row 1 skipped"
    assert table.column_names[:4] == ["BKG_NUM", "SEX", "CHARGE", "BAIL"] and table.num_rows == 2
    assert table.column_names[4:] == (["CHG_DESC", "column_F"] if "CHG_DESC" in names else ["CHARGE_1", "BAIL_1"])


def test_a_row_of_spaces_above_the_header_is_empty(tmp_path: Path) -> None:
    data = row(1, ["   "]) + row(2, ["id", "name"]) + row(3, ["a1", "x"]) + row(4, ["a2", "y"])
    (out,) = convert_workbook(write_xlsx(tmp_path / "spaces.xlsx", [Sheet("S", data)]), tmp_path / "out")
    assert out.header == "header in row 2"
    assert pq.read_table(out.path).to_pydict() == {"id": ["a1", "a2"], "name": ["x", "y"]}


def test_an_ods_written_indented_reads(tmp_path: Path) -> None:
    # odfpy's pythagoras-kspread.ods (KOffice): whitespace between the cells stopped calamine 0.36
    # ("Expecting 'table-cell', found Text"): corrupt. A paragraph keeps its own spaces.
    rows = [["side", "name"], [3, " a b "], [4, "c"], [5, None]]
    (out,) = convert_workbook(write_ods(tmp_path / "kspread.ods", {"Sheet1": rows}, indent=True), tmp_path / "out")
    assert pq.read_table(out.path).to_pydict() == {"side": [3, 4, 5], "name": [" a b ", "c", None]}


LIBRARY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE library:library PUBLIC "-//OpenOffice.org//DTD '
           b'OfficeDocument 1.0//EN" "library.dtd">\n<library:library '
           b'xmlns:library="http://openoffice.org/2000/library" library:name="Standard" library:readonly="false" '
           b'library:passwordprotected="false"/>')


@pytest.mark.parametrize(("name", "data", "code"), [
    # What OpenOffice writes for a macro library and its menus (ezodf's big-test-table.ods): read.
    ("Basic/Standard/script-lb.xml", LIBRARY, None),
    ("Configurations2/menubar/menubar.xml", LIBRARY.replace(b"library.dtd", b"menubar.dtd"), None),
    # A DTD that declares something, there or anywhere else, is refused as before.
    ("Basic/Standard/script-lb.xml", LIBRARY.replace(b'"library.dtd">', b'"library.dtd" [<!ENTITY a "aaaa">]>'),
     "unsafe"),
    ("Basic/Standard/script-lb.xml", LIBRARY.replace(b"<library:library ", b'<!ENTITY a "b"><library:library '),
     "unsafe"),
    ("meta.xml", LIBRARY, "unsafe"),
])
def test_an_openoffice_library_dtd_is_no_attack(tmp_path: Path, name: str, data: bytes, code: str | None) -> None:
    src = write_ods(tmp_path / "macros.ods", {"Sheet1": [["a", "b"], [1, 2]]}, parts={name: data})
    if code is None:
        (out,) = convert_workbook(src, tmp_path / "out")
        assert pq.read_table(out.path).to_pydict() == {"a": [1], "b": [2]}
    else:
        with pytest.raises(WorkbookRejected) as caught:
            convert_workbook(src, tmp_path / "out")
        assert caught.value.code == code


def test_an_ods_declaring_a_billion_by_a_billion_cells_is_too_large(tmp_path: Path) -> None:
    # calamine's issue_594_dos.ods: 1.3 KB repeating one cell 999,999,999 times in 999,999,999 rows was
    # "corrupt"; calamine's own cell limit stops it, a limit on the sheet's size.
    src = write_ods(tmp_path / "dos.ods", {"Sheet1": [OdsCell(
        '<table:table-row table:number-rows-repeated="999999999"><table:table-cell '
        'table:number-columns-repeated="999999999" office:value-type="string"><text:p>X</text:p></table:table-cell>'
        "</table:table-row>")]})
    assert src.stat().st_size < 2000
    with pytest.raises(WorkbookRejected) as caught:
        convert_workbook(src, tmp_path / "out")
    assert caught.value.code == "too-large" and "cells (rows and cells repeated), above the reader's limit" in (
        caught.value.reason)
