"""A small .xls writer for tests: BIFF8 records ([MS-XLS]) in a compound file ([MS-CFB]).

Nothing on this machine writes .xls, and the cases the converter must survive are about the bytes:
the workbook stream's name in another letter case, an embedded chart whose cached values are
cell-like records inside the worksheet's substream, a formula record whose token list is cut short.
This writes the smallest workbook xlrd (the reference) and calamine both open: globals (BOF,
CODEPAGE, DATEMODE, four FONTs, the number formats, 15 style XFs and the cell XFs, BOUNDSHEETs,
EOF), then one substream per sheet (BOF, DIMENSIONS, cells, EOF). The compound file has one stream
of at least 4,096 bytes (so no mini stream) in 512-byte sectors.

A workbook may say another code page than Excel's 1200 (UTF-16) and store its strings as 8-bit
Latin-1 (``codepage=1252``, as writers other than Excel do), and hold chart sheets (``chart_sheets``:
a BOUNDSHEET of type 2 and a chart substream). :func:`write_biff` writes an Excel 2.x, 3.0 or 4.0
file instead: one worksheet's BIFF2/3/4 stream, without a compound file.

Cells: ``None`` → nothing; ``bool`` → BOOLERR; ``int``/``float`` → NUMBER; ``str`` → LABEL;
``datetime``/``date``/``time``/``timedelta`` → NUMBER with a date, date-time, time or ``[h]:mm:ss``
format; :class:`CellError` → BOOLERR holding an error code; :class:`BrokenFormula` → a FORMULA record
holding a cached number whose formula is a PtgExp token without its 4-byte operand.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Record types ([MS-XLS] 2.3).
BOF, EOF, CODEPAGE, DATEMODE, FONT, FORMAT, XF = 0x0809, 0x000A, 0x0042, 0x0022, 0x0031, 0x041E, 0x00E0
BOUNDSHEET, DIMENSIONS, NUMBER, LABEL, BOOLERR, FORMULA, SIINDEX = 0x85, 0x200, 0x203, 0x204, 0x205, 0x6, 0x1065
ERROR_CODES = {"#NULL!": 0x00, "#DIV/0!": 0x07, "#VALUE!": 0x0F, "#REF!": 0x17, "#NAME?": 0x1D, "#NUM!": 0x24,
               "#N/A": 0x2A}
# Cell XFs after the 15 style XFs: general, then one per date-like format (number format ids from 164).
FORMATS = {164: "yyyy-mm-dd", 165: "yyyy-mm-dd hh:mm:ss", 166: "hh:mm:ss", 167: "[h]:mm:ss"}
XF_GENERAL, XF_DATE, XF_DATETIME, XF_TIME, XF_DURATION = 15, 16, 17, 18, 19
FREE, END, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


@dataclass(frozen=True)
class CellError:
    text: str  # "#DIV/0!", "#N/A", ...


@dataclass(frozen=True)
class BrokenFormula:
    cached: float  # the value Excel showed; the formula's token list is cut short


@dataclass(frozen=True)
class Chart:
    """An embedded chart's substream, written into the sheet's after ``after_row`` of its rows: its
    cached series values are NUMBER records at (point, series)."""

    after_row: int
    cached: Sequence[float]


def record(rtype: int, payload: bytes = b"") -> bytes:
    return struct.pack("<HH", rtype, len(payload)) + payload


def _string16(text: str, wide: bool = True) -> bytes:  # XLUnicodeString: UTF-16, or 8-bit (Latin-1)
    return struct.pack("<HB", len(text), int(wide)) + text.encode("utf-16-le" if wide else "latin-1")


def _string8(text: str, wide: bool = True) -> bytes:  # ShortXLUnicodeString: UTF-16, or 8-bit (Latin-1)
    return struct.pack("<BB", len(text), int(wide)) + text.encode("utf-16-le" if wide else "latin-1")


def _serial(value: dt.datetime | dt.date | dt.time | dt.timedelta, date1904: bool) -> float:
    if isinstance(value, dt.timedelta):
        return value.total_seconds() / 86400
    if isinstance(value, dt.time):
        return (value.hour * 3600 + value.minute * 60 + value.second) / 86400
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    epoch = dt.datetime(1904, 1, 1) if date1904 else dt.datetime(1899, 12, 30)
    return (value - epoch).total_seconds() / 86400


def _cell(row: int, col: int, value: object, date1904: bool, wide: bool = True) -> bytes:
    at = struct.pack("<HHH", row, col, XF_GENERAL)
    if isinstance(value, bool):
        return record(BOOLERR, at + struct.pack("<BB", int(value), 0))
    if isinstance(value, CellError):
        return record(BOOLERR, at + struct.pack("<BB", ERROR_CODES[value.text], 1))
    if isinstance(value, int | float):
        return record(NUMBER, at + struct.pack("<d", value))
    if isinstance(value, str):
        return record(LABEL, at + _string16(value, wide))
    if isinstance(value, BrokenFormula):
        # Cached number, no flags, no chain; then cce=1 and a lone PtgExp (0x01) without its operand.
        return record(FORMULA, at + struct.pack("<dHI", value.cached, 0, 0) + struct.pack("<H", 1) + b"\x01")
    if isinstance(value, dt.timedelta):
        xf = XF_DURATION
    elif isinstance(value, dt.time):
        xf = XF_TIME
    elif isinstance(value, dt.datetime):
        xf = XF_DATETIME
    elif isinstance(value, dt.date):
        xf = XF_DATE
    else:
        raise TypeError(f"no cell for {value!r}")
    return record(NUMBER, struct.pack("<HHH", row, col, xf) + struct.pack("<d", _serial(value, date1904)))


def _sheet(rows: Sequence[Sequence[object]], date1904: bool, chart: Chart | None, wide: bool = True) -> bytes:
    width = max((len(r) for r in rows), default=0)
    body = record(BOF, struct.pack("<HHHHII", 0x0600, 0x0010, 0x0DBB, 0x07CC, 0, 6))
    body += record(DIMENSIONS, struct.pack("<IIHHH", 0, len(rows), 0, width, 0))
    for r, row in enumerate(rows):
        body += b"".join(_cell(r, c, v, date1904, wide) for c, v in enumerate(row) if v is not None)
        if chart is not None and r == chart.after_row:
            body += record(BOF, struct.pack("<HHHHII", 0x0600, 0x0020, 0x0DBB, 0x07CC, 0, 6))
            body += record(SIINDEX, struct.pack("<H", 2))  # the values of the series follow
            body += b"".join(record(NUMBER, struct.pack("<HHHd", i, 0, 0, v)) for i, v in enumerate(chart.cached))
            body += record(EOF)
    return body + record(EOF)


def _chart_sheet() -> bytes:
    """A chart sheet's substream: its BOF (a chart) and EOF, with a cached value between, as a chart's."""
    return (record(BOF, struct.pack("<HHHHII", 0x0600, 0x0020, 0x0DBB, 0x07CC, 0, 6))
            + record(NUMBER, struct.pack("<HHHd", 0, 0, 0, 1.0)) + record(EOF))


def workbook_stream(sheets: Mapping[str, Sequence[Sequence[object]]], *, date1904: bool = False,
                    hidden: Sequence[str] = (), charts: Mapping[str, Chart] | None = None, codepage: int = 1200,
                    chart_sheets: Sequence[str] = ()) -> bytes:
    """The workbook stream; ``chart_sheets`` are sheet names (their rows unused) written as chart sheets."""
    wide = codepage == 1200
    globals_ = record(BOF, struct.pack("<HHHHII", 0x0600, 0x0005, 0x0DBB, 0x07CC, 0, 6))
    globals_ += record(CODEPAGE, struct.pack("<H", codepage)) + record(DATEMODE, struct.pack("<H", int(date1904)))
    font = struct.pack("<HHHHHBBBB", 200, 0, 0x7FFF, 400, 0, 0, 0, 0, 0) + _string8("Arial")
    globals_ += record(FONT, font) * 4
    globals_ += b"".join(record(FORMAT, struct.pack("<H", i) + _string16(f)) for i, f in FORMATS.items())
    style = struct.pack("<HHHBBBBIIH", 0, 0, 0xFFF5, 0x20, 0, 0, 0xF4, 0, 0, 0x20C0)
    globals_ += record(XF, style) * 15
    for fmt in (0, *FORMATS):
        globals_ += record(XF, struct.pack("<HHHBBBBIIH", 0, fmt, 0x0001, 0x20, 0, 0, 0, 0, 0, 0x20C0))
    names = list(sheets)
    bodies = [_chart_sheet() if name in chart_sheets else _sheet(rows, date1904, (charts or {}).get(name), wide)
              for name, rows in sheets.items()]
    bound = [struct.pack("<IBB", 0, 1 if n in hidden else 0, 2 if n in chart_sheets else 0) + _string8(n, wide)
             for n in names]
    offset = len(globals_) + sum(len(record(BOUNDSHEET, b)) for b in bound) + len(record(EOF))
    for i, body in enumerate(bodies):
        bound[i] = struct.pack("<I", offset) + bound[i][4:]
        offset += len(body)
    return globals_ + b"".join(record(BOUNDSHEET, b) for b in bound) + record(EOF) + b"".join(bodies)


def compound_file(stream: bytes, name: str = "Workbook") -> bytes:
    """One stream in a version 3 compound file; padded to 4,096 bytes so that it is not a mini stream."""
    sector = 512
    stream += b"\0" * (max(4096, -(-len(stream) // sector) * sector) - len(stream))
    n_data = len(stream) // sector
    n_fat = 1
    while n_fat * 128 < n_fat + 1 + n_data:
        n_fat += 1
    if n_fat > 109:
        raise ValueError("stream too large for a header-only FAT")
    fat = [FAT_SECTOR] * n_fat + [END] + [n_fat + 2 + i for i in range(n_data - 1)] + [END]
    fat += [FREE] * (n_fat * 128 - len(fat))
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack(
        "<HHHHH6xIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, 0, n_fat, n_fat, 0, 4096, END, 0, END, 0)
    header += struct.pack("<109I", *(list(range(n_fat)) + [FREE] * (109 - n_fat)))

    def entry(text: str, kind: int, child: int, start: int, size: int) -> bytes:
        raw = text.encode("utf-16-le") + b"\0\0"
        return (raw.ljust(64, b"\0") + struct.pack("<HBBIII", len(raw), kind, 1, NO_STREAM, NO_STREAM, child)
                + b"\0" * 36 + struct.pack("<IQ", start, size))

    empty = b"\0" * 64 + struct.pack("<HBBIII", 0, 0, 0, NO_STREAM, NO_STREAM, NO_STREAM) + b"\0" * 36 + b"\0" * 12
    directory = entry("Root Entry", 5, 1, END, 0) + entry(name, 2, NO_STREAM, n_fat + 1, len(stream)) + empty * 2
    return header + struct.pack(f"<{len(fat)}I", *fat) + directory + stream


def write_xls(path: Path, sheets: Mapping[str, Sequence[Sequence[object]]], *, stream_name: str = "Workbook",
              date1904: bool = False, hidden: Sequence[str] = (), charts: Mapping[str, Chart] | None = None,
              codepage: int = 1200, chart_sheets: Sequence[str] = ()) -> Path:
    path.write_bytes(compound_file(workbook_stream(sheets, date1904=date1904, hidden=hidden, charts=charts,
                                                   codepage=codepage, chart_sheets=chart_sheets), stream_name))
    return path


#: BIFF2, 3 and 4 ([MS-XLS] describes BIFF8; the older records are OpenOffice's "Excel File Format"):
#: BOF's record type by version, and the cell records, which carry 3 attribute bytes in BIFF2 and an
#: XF index in BIFF3 and 4.
LEGACY_BOF = {2: 0x0009, 3: 0x0209, 4: 0x0409}


def write_biff(path: Path, version: int, rows: Sequence[Sequence[object]]) -> Path:
    """An Excel 2.x/3.0/4.0 file of one worksheet: numbers, strings (8-bit, Latin-1) and booleans."""
    if version == 2:
        body = record(LEGACY_BOF[2], struct.pack("<HH", 0x0007, 0x0010))
        body += record(0x0000, struct.pack("<HHHH", 0, len(rows), 0, max(len(r) for r in rows)))  # DIMENSIONS
    else:
        body = record(LEGACY_BOF[version], struct.pack("<HHH", 0, 0x0010, 0))
        # One font, the General format and one cell format (XF 0), which every cell uses.
        body += record(0x0231, struct.pack("<HHHB", 200, 0, 0x7FFF, 5) + b"Arial")
        body += record(0x001E if version == 3 else 0x041E, (b"" if version == 3 else b"\0\0") + b"\x07General")
        body += record(0x0243 if version == 3 else 0x0443, struct.pack("<BBHHHHH", 0, 0, 0x0001, 0, 0, 0, 0))
        body += record(DIMENSIONS, struct.pack("<HHHHH", 0, len(rows), 0, max(len(r) for r in rows), 0))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            at = struct.pack("<HH", r, c) + (b"\0\0\0" if version == 2 else struct.pack("<H", 0))
            if isinstance(value, bool):
                body += record(0x0005 if version == 2 else BOOLERR, at + struct.pack("<BB", int(value), 0))
            elif isinstance(value, int | float):
                body += record(0x0003 if version == 2 else NUMBER, at + struct.pack("<d", value))
            elif isinstance(value, str):
                raw = value.encode("latin-1")
                size = struct.pack("<B", len(raw)) if version == 2 else struct.pack("<H", len(raw))
                body += record(0x0004 if version == 2 else LABEL, at + size + raw)
    path.write_bytes(body + record(EOF))
    return path
