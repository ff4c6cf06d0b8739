"""Splitting one large worksheet into two packages, so that two readers share its parse.

calamine parses one sheet on one thread; on a 100k-row sheet that parse is most
of the conversion. Here the sheet XML (already inflated by the guard, with its
bounds) is cut at a ``</row>`` boundary near its middle into two *stored* zip
packages, each a copy of the workbook in which only that sheet part differs:

* the head: everything up to the seam row, then the sheet's closing part;
* the tail: the sheet's opening part, a copy of the header row renumbered to the
  seam row's number (so the tail reads the same header, the same column names
  and the same column range), then the rows after the seam.

Every other part (shared strings, styles and their date formats, the workbook
part with its 1904 flag, other sheets) is copied byte for byte in its original
compressed form: the readers inflate them exactly as they would in the original,
and nothing here inflates a part the guard has not bounded.

The worker that reads the head merges both halves and decides each column's
type over the whole column; whenever the halves do not line up exactly, it reads
the original workbook instead (see ``convert_worker.convert_split_head``).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_LOCAL = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # zipfile.structCentralDir
_END = struct.Struct("<4s4H2LH")  # zipfile.structEndArchive
_ZIP32_MAX = 0xFFFFFFFF - 1
_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b[^>]*>")
_ROW_NUMBER = re.compile(rb'\sr="(\d+)"')
_CELL_REF = re.compile(rb'(<(?:\w+:)?c\b[^>]*?\sr="[A-Z]+)\d+"')


@dataclass
class SplitPlan:
    head: Path  # package holding the header and the rows up to the seam
    tail: Path  # package holding a renumbered header copy and the rows after the seam
    header_row: int  # row number of the sheet's first row element
    seam_row: int  # row number of the head's last row element
    last_row: int  # row number of the sheet's last row element


@dataclass
class _Entry:
    name: bytes
    flags: int
    method: int
    time: int
    date: int
    crc: int
    csize: int
    usize: int
    offset: int  # of the local header in the written package
    version: int
    create: tuple[int, int]
    external: int


def find_seam(data: bytes) -> tuple[int, int, int, int, int, int, int, int] | None:
    """Where to cut, or None: offsets (rows start, rows end, header row element start and end,
    seam) and row numbers (header row, seam row, last row).

    Only a plain layout is split: a ``sheetData`` element with row elements that
    carry ``r`` numbers, at least one row after the seam, numbers increasing
    across it. Anything else is left to the single reader.
    """
    m = _SHEET_DATA.search(data)
    if m is None or m.group(0).endswith(b"/>"):
        return None
    prefix = m.group(1)
    start = m.end()
    end = data.rfind(b"</" + prefix + b"sheetData>")
    row_open, row_close = b"<" + prefix + b"row", b"</" + prefix + b"row>"
    if end < start:
        return None
    header_at = data.find(row_open, start, end)
    if header_at < 0:
        return None
    header_end = data.find(row_close, header_at, end)
    if header_end < 0:
        return None
    header_end += len(row_close)
    seam = data.find(row_close, start + (end - start) // 2, end)
    if seam < 0:
        return None
    seam += len(row_close)
    seam_open = data.rfind(row_open, start, seam)
    next_open = data.find(row_open, seam, end)
    last_open = data.rfind(row_open, seam, end)
    if seam_open <= header_at or next_open < 0 or last_open < 0:
        return None
    numbers = []
    for at in (header_at, seam_open, next_open, last_open):
        tag = data[at: data.find(b">", at, at + 4096) + 1]
        found = _ROW_NUMBER.search(tag)
        if not tag or (tag.endswith(b"/>") and at == header_at) or found is None:
            return None
        numbers.append(int(found.group(1)))
    header_row, seam_row, next_row, last_row = numbers
    if not header_row < seam_row < next_row <= last_row:
        return None
    return start, end, header_at, header_end, seam, header_row, seam_row, last_row


def renumber_row(row: bytes, number: int) -> bytes:
    """The header row element moved to row ``number``: its ``r`` and every cell reference."""
    close = row.find(b">")
    head = _ROW_NUMBER.sub(b' r="%d"' % number, row[: close + 1], count=1)
    return head + _CELL_REF.sub(rb'\g<1>%d"' % number, row[close + 1:])


def write_split(src: Path, part: str, data: bytes, staging: Path) -> SplitPlan | None:
    """Write the two half packages of sheet ``part`` (whose inflated XML is ``data``) into ``staging``."""
    seam = find_seam(data)
    if seam is None:
        return None
    start, end, header_at, header_end, cut, header_row, seam_row, last_row = seam
    view = memoryview(data)
    header = renumber_row(bytes(view[header_at:header_end]), seam_row)
    head_pieces = [view[:cut], view[end:]]
    tail_pieces = [view[:start], memoryview(header), view[cut:end], view[end:]]
    plan = SplitPlan(staging / "half-head.xlsx", staging / "half-tail.xlsx", header_row, seam_row, last_row)
    with src.open("rb") as fh:
        for dst, pieces in ((plan.head, head_pieces), (plan.tail, tail_pieces)):
            if not _write_package(fh, part, pieces, dst):
                return None
    return plan


def _write_package(fh: BinaryIO, part: str, pieces: list[memoryview], dst: Path) -> bool:
    """A zip like ``fh``'s with ``part`` replaced by ``pieces`` (stored); False if that needs zip64."""
    import zipfile

    entries: list[_Entry] = []
    with zipfile.ZipFile(fh) as zf, dst.open("wb") as out:
        for info in zf.infolist():
            fh.seek(info.header_offset)
            local = _LOCAL.unpack(fh.read(_LOCAL.size))
            name = fh.read(local[10])
            fh.seek(local[11], 1)
            offset = out.tell()
            if offset > _ZIP32_MAX:
                return False
            if info.filename == part:
                crc, size = 0, 0
                for piece in pieces:
                    crc = zlib.crc32(piece, crc)
                    size += len(piece)
                if size > _ZIP32_MAX:
                    return False
                entry = _Entry(name, info.flag_bits & ~0x8, zipfile.ZIP_STORED, local[5], local[6], crc, size, size,
                               offset, 20, (info.create_version, info.create_system), info.external_attr)
                out.write(_local_header(entry))
                for piece in pieces:
                    out.write(piece)
            else:
                # The part as compressed in the original: the reader inflates it as it would there.
                if info.file_size > _ZIP32_MAX or info.compress_size > _ZIP32_MAX:
                    return False
                entry = _Entry(name, info.flag_bits & ~0x8, info.compress_type, local[5], local[6], info.CRC,
                               info.compress_size, info.file_size, offset, max(info.extract_version, 20),
                               (info.create_version, info.create_system), info.external_attr)
                out.write(_local_header(entry))
                left = info.compress_size
                while left:
                    chunk = fh.read(min(left, 1 << 20))
                    if not chunk:
                        return False
                    out.write(chunk)
                    left -= len(chunk)
            entries.append(entry)
        directory = out.tell()
        for e in entries:
            out.write(_CENTRAL.pack(
                b"PK\x01\x02", e.create[0], e.create[1], e.version, 0, e.flags, e.method, e.time, e.date,
                e.crc, e.csize, e.usize, len(e.name), 0, 0, 0, 0, e.external, e.offset,
            ))
            out.write(e.name)
        size = out.tell() - directory
        if directory > _ZIP32_MAX or len(entries) > 0xFFFF:
            return False
        out.write(_END.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), size, directory, 0))
    return True


def _local_header(e: _Entry) -> bytes:
    return _LOCAL.pack(
        b"PK\x03\x04", e.version, 0, e.flags, e.method, e.time, e.date, e.crc, e.csize, e.usize, len(e.name), 0
    ) + e.name
