"""Every rejection code, on a file built here; and the five formats from content."""

from __future__ import annotations

import random
import shutil
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xlsxwriter

from sheetdrop_step.converter import Limits, WorkbookRejected, convert_workbook

FIXTURES = Path(__file__).resolve().parent / "workbooks"


def small_xlsx(path: Path) -> Path:
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Data")
    ws.write_row(0, 0, ["a", "b"])
    ws.write_row(1, 0, [1, "x"])
    wb.close()
    return path


def rejected(src: Path, out: Path, **kw) -> WorkbookRejected:
    with pytest.raises(WorkbookRejected) as info:
        convert_workbook(src, out, **kw)
    assert not out.exists(), "no partial output on rejection"
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []
    assert info.value.reason
    return info.value


def rewrite_zip(src: Path, dst: Path, replace: dict[str, bytes], extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


def test_not_a_workbook(tmp_path: Path) -> None:
    csv = tmp_path / "data.xlsx"
    csv.write_text("id,amount\n1,2\n")
    assert rejected(csv, tmp_path / "o1").code == "not-a-workbook"
    pdf = tmp_path / "scan.xlsx"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    err = rejected(pdf, tmp_path / "o2")
    assert (err.code, "PDF" in err.reason) == ("not-a-workbook", True)
    other_zip = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    assert rejected(other_zip, tmp_path / "o3").code == "not-a-workbook"


@pytest.mark.parametrize(("content", "kind"), [
    ("id;montant\n1;2,50 €\n".encode("cp1252"), "a text file (CSV or similar)"),  # Excel on Windows
    ("id,amount,note\n1,2,café ✓\n".encode(), "a text file (CSV or similar)"),
    (bytes(b for b in random.Random(7).randbytes(4096) if b), "not a spreadsheet"),  # binary, no NUL byte
])
def test_what_a_file_that_is_not_a_workbook_is_called(tmp_path: Path, content: bytes, kind: str) -> None:
    path = tmp_path / "upload.xlsx"
    path.write_bytes(content)
    assert rejected(path, tmp_path / "out").reason == (
        f"the file is {kind}, not an Excel or OpenDocument workbook, whatever its extension; open it in Excel or "
        "LibreOffice and save it as .xlsx")


def test_corrupt_truncated_and_bad_crc(tmp_path: Path) -> None:
    good = small_xlsx(tmp_path / "good.xlsx")
    data = good.read_bytes()
    truncated = tmp_path / "trunc.xlsx"
    truncated.write_bytes(data[: len(data) // 2])
    assert rejected(truncated, tmp_path / "o1").code == "corrupt"

    stored = tmp_path / "stored.xlsx"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    raw = bytearray(stored.read_bytes())
    at = raw.index(b"<sheetData>") + 3
    raw[at] ^= 0x20  # one flipped bit inside the sheet: the CRC no longer matches
    flipped = tmp_path / "crc.xlsx"
    flipped.write_bytes(bytes(raw))
    err = rejected(flipped, tmp_path / "o2")
    assert err.code == "corrupt" and "CRC" in err.reason


def test_encrypted(tmp_path: Path) -> None:
    msoffcrypto = pytest.importorskip("msoffcrypto")
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = small_xlsx(tmp_path / "plain.xlsx")
    locked = tmp_path / "locked.xlsx"
    with plain.open("rb") as fin, locked.open("wb") as fout:
        OOXMLFile(fin).encrypt("secret", fout)
    assert locked.read_bytes()[:4] == b"\xd0\xcf\x11\xe0"
    assert msoffcrypto.OfficeFile(locked.open("rb")).is_encrypted()
    err = rejected(locked, tmp_path / "o")
    assert err.code == "encrypted" and "password" in err.reason


def test_zip_bomb_is_unsafe(tmp_path: Path) -> None:
    good = small_xlsx(tmp_path / "good.xlsx")
    # 64 MiB of zeros deflate to ~64 KiB: a 1000:1 ratio no workbook part has.
    bomb = rewrite_zip(good, tmp_path / "bomb.xlsx", {}, {"xl/media/pad.bin": b"\0" * (64 * 1024**2)})
    assert bomb.stat().st_size < 200_000
    err = rejected(bomb, tmp_path / "o")
    assert err.code == "unsafe" and "zip bomb" in err.reason


def test_declared_size_over_limit_is_refused_before_inflating(tmp_path: Path) -> None:
    good = small_xlsx(tmp_path / "good.xlsx")
    big = rewrite_zip(good, tmp_path / "big.xlsx", {}, {"xl/media/blob.bin": bytes(range(256)) * 8192})
    err = rejected(big, tmp_path / "o", limits=Limits(max_uncompressed_bytes=1024**2))
    assert err.code == "too-large"


def test_entity_expansion_is_unsafe(tmp_path: Path) -> None:
    good = small_xlsx(tmp_path / "good.xlsx")
    lol = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
        )
        + b']>\n<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
        b"<si><t>&lol9;</t></si></sst>"
    )
    bomb = rewrite_zip(good, tmp_path / "lol.xlsx", {"xl/sharedStrings.xml": lol})
    assert bomb.stat().st_size < 10_000
    err = rejected(bomb, tmp_path / "o")
    assert err.code == "unsafe" and "entit" in err.reason


def _far_cell_xlsx(path: Path) -> Path:
    good = small_xlsx(path.with_name("seed.xlsx"))
    with zipfile.ZipFile(good) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    sheet = sheet.replace('<dimension ref="A1:B2"/>', "").replace(
        "</sheetData>", '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
    )
    return rewrite_zip(good, path, {"xl/worksheets/sheet1.xml": sheet.encode()})


def test_cell_at_xfd1048576_is_refused_by_the_guard_not_the_reader(tmp_path: Path) -> None:
    src = _far_cell_xlsx(tmp_path / "far.xlsx")
    assert src.stat().st_size < 10_000
    err = rejected(src, tmp_path / "o")
    # "cells" comes from the guard's scan; a reader abort would speak of its memory budget.
    assert err.code == "too-large" and "XFD" not in err.reason and "cells" in err.reason


def test_reader_abort_in_the_child_becomes_a_rejection(tmp_path: Path) -> None:
    # With the cell-count guard lifted, calamine tries to allocate the 17-billion-cell
    # range and aborts; the memory-limited child dies, the conversion does not.
    src = _far_cell_xlsx(tmp_path / "far.xlsx")
    limits = Limits(max_cells=10**12, max_memory_bytes=2 * 1024**3)
    err = rejected(src, tmp_path / "o", limits=limits)
    assert err.code == "too-large"


def test_file_size_limit(tmp_path: Path) -> None:
    src = small_xlsx(tmp_path / "a.xlsx")
    assert rejected(src, tmp_path / "o", limits=Limits(max_file_bytes=1000)).code == "too-large"


def test_empty_workbooks(tmp_path: Path) -> None:
    src = tmp_path / "empty.xlsx"
    wb = xlsxwriter.Workbook(src)
    wb.add_worksheet("Nothing")
    hidden = wb.add_worksheet("Hidden")
    hidden.write(0, 0, "x")
    hidden.hide()
    wb.close()
    err = rejected(src, tmp_path / "o")
    assert err.code == "empty" and "Hidden" in err.reason
    zero = tmp_path / "zero.xlsx"
    zero.write_bytes(b"")
    assert rejected(zero, tmp_path / "o2").code == "not-a-workbook"


# ---------------------------------------------------------------- formats

FIXTURE_ROWS = {
    "id": [1, 2, 3],
    "code": ["00123", "00456", "07"],
    "amount": [1.5, 2.25, -3.0],
    "mixed": ["456", "n/a", "7.5"],
}


@pytest.mark.parametrize("name", ["sample.xls", "sample.ods", "sample.xlsm"])
def test_fixture_formats(tmp_path: Path, name: str) -> None:
    import datetime as dt

    outs = convert_workbook(FIXTURES / name, tmp_path / "out")
    assert [o.sheet for o in outs] == ["Data"]  # hidden "Secret" and empty "Blank" skipped
    got = pq.read_table(outs[0].path).to_pydict()
    for col, values in FIXTURE_ROWS.items():
        assert got[col] == values, col
    when = [dt.datetime(2021, 3, 4, 5, 6, 7), dt.datetime(1999, 12, 31), dt.datetime(2024, 2, 29, 23, 59)]
    assert got["when"] == when
    assert outs[0].column_types["when"] == "timestamp"


@pytest.mark.parametrize("name", ["sample.xls", "sample.ods"])
def test_format_comes_from_content_not_extension(tmp_path: Path, name: str) -> None:
    renamed = tmp_path / "upload.xlsx"
    shutil.copy(FIXTURES / name, renamed)
    outs = convert_workbook(renamed, tmp_path / "out")
    assert pq.read_table(outs[0].path).to_pydict()["code"] == FIXTURE_ROWS["code"]


def test_xlsb_is_recognised_from_content(tmp_path: Path) -> None:
    # The package layout is enough to classify it: an .xlsb workbook without sheets is empty (read as
    # an .xlsx, it would have no workbook part: corrupt; as anything else, not a workbook).
    src = tmp_path / "book.bin"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("xl/workbook.bin", b"\x83\x01\x00")
    with pytest.raises(WorkbookRejected) as rejected:
        convert_workbook(src, tmp_path / "out")
    assert (rejected.value.code, rejected.value.reason) == ("empty", "the workbook has no visible worksheet with data")


def _lying_zip(path: Path, name: str, payload: bytes, declared: int) -> None:
    """A workbook whose entry ``name`` declares ``declared`` bytes in its local header *and*
    the central directory, while its deflate stream inflates to ``len(payload)``."""
    import struct

    good = small_xlsx(path.with_name("seed-lie.xlsx"))
    rewrite_zip(good, path, {}, {name: payload})  # last entry: nothing after it but the directory
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        local = z.getinfo(name).header_offset
    struct.pack_into("<L", blob, local + 22, declared)  # local header: uncompressed size
    central = blob.rindex(b"PK\x01\x02")  # the last central record is this entry's
    struct.pack_into("<L", blob, central + 24, declared)  # central directory: uncompressed size
    path.write_bytes(bytes(blob))


def test_zip_bomb_that_lies_about_its_size_is_unsafe(tmp_path: Path) -> None:
    # Both headers declare 1,000 bytes; the stream inflates to 64 MiB. zipfile would stop
    # at 1,000 bytes and report a CRC error (corrupt); the guard inflates on, bounded.
    bomb = tmp_path / "liar.xlsx"
    _lying_zip(bomb, "xl/media/pad.bin", b"\0" * (64 * 1024**2), declared=1000)
    assert bomb.stat().st_size < 200_000
    with zipfile.ZipFile(bomb) as z:
        assert z.getinfo("xl/media/pad.bin").file_size == 1000
        assert z.testzip() == "xl/media/pad.bin"  # to zipfile it is merely a bad CRC
    err = rejected(bomb, tmp_path / "o")
    assert err.code == "unsafe" and "lies about its size" in err.reason


def test_entity_declaration_in_a_sheet_is_unsafe_even_with_the_reader_started(tmp_path: Path) -> None:
    # Sheets are checked by the deep scan, which runs while the reader child parses;
    # its rejection wins and the child's work is thrown away.
    good = small_xlsx(tmp_path / "good.xlsx")
    with zipfile.ZipFile(good) as z:
        sheet = z.read("xl/worksheets/sheet1.xml")
    evil = sheet.replace(b"?>", b'?>\n<!DOCTYPE worksheet [<!ENTITY x "y">]>', 1)
    src = rewrite_zip(good, tmp_path / "dtd.xlsx", {"xl/worksheets/sheet1.xml": evil})
    err = rejected(src, tmp_path / "o")
    assert err.code == "unsafe" and "sheet1.xml" in err.reason
