"""Splitting one large worksheet into two packages, so that two readers share its parse.

calamine parses one sheet on one thread; on a 100k-row sheet that parse is most
of the conversion. :class:`SheetSplitter` is fed the sheet XML as the guard
inflates it (with its bounds) and writes two *stored* zip packages, each a copy
of the workbook in which only that sheet part differs:

* the head: everything up to a ``</row>`` boundary past ``fraction`` of the
  XML, then ``</sheetData></worksheet>``. calamine stops reading a sheet at
  ``</sheetData>``, so what follows it in the original (merged cells, links,
  conditional formats) does not change the values read. The head is complete, and
  its reader starts, while the rest of the sheet is still being inflated; that is
  why it gets more than half of the rows.
* the tail: the sheet's opening part, a copy of the header row renumbered to the
  seam row's number (so the tail reads the same header, column names and column
  range), then the rows after the seam and the original closing part.

Every other part (shared strings, styles and their date formats, the workbook
part with its 1904 flag, other sheets) is copied byte for byte in its original
compressed form: the readers inflate them exactly as they would in the original,
and nothing here inflates a part the guard has not bounded.

The reader of the head merges both halves and decides each column's type over
the whole column; whenever the halves do not line up exactly it reads the
original workbook instead (``convert_worker.convert_split_head``).
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_LOCAL = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # zipfile.structCentralDir
_END = struct.Struct("<4s4H2LH")  # zipfile.structEndArchive
_ZIP32_MAX = 0xFFFFFFFF - 1
_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b[^>]*>")
_ROOT = re.compile(rb"<((?:\w+:)?worksheet)\b")
_ROW_NUMBER = re.compile(rb'\sr="(\d+)"')
_CELL_REF = re.compile(rb'(<(?:\w+:)?c\b[^>]*?\sr="[A-Z]+)\d+"')
# The opening part and header row must show up within this many bytes, or the sheet is not split.
_CONTEXT = 4 * 1024**2
# The seam row's element must be shorter than this (its start is looked up backwards).
_ROW_CONTEXT = 256 * 1024


@dataclass
class SplitPlan:
    head: Path  # package holding the header and the rows up to the seam
    tail: Path  # package holding a renumbered header copy and the rows after the seam
    header_row: int  # row number of the sheet's first row element
    seam_row: int  # row number of the head's last row element
    last_row: int  # row number of the sheet's last row element (-1 when not found)


class _StoredZip:
    """A copy of ``src``'s package in which ``part`` is written, stored, by ``write``."""

    def __init__(self, src: BinaryIO, infos: list[zipfile.ZipInfo], part: str, dst: Path) -> None:
        self.out = dst.open("wb")
        self.central: list[bytes] = []
        self.crc = 0
        self.size = 0
        sheet_info: zipfile.ZipInfo | None = None
        for info in infos:
            if info.filename == part:
                sheet_info = info
                continue
            src.seek(info.header_offset)
            local = _LOCAL.unpack(src.read(_LOCAL.size))
            name = src.read(local[10])
            src.seek(local[11], 1)
            offset = self.out.tell()
            # The part as compressed in the original: the reader inflates it as it would there.
            fields = (max(info.extract_version, 20), info.flag_bits & ~0x8, info.compress_type, local[5], local[6],
                      info.CRC, info.compress_size, info.file_size)
            self.out.write(_LOCAL.pack(b"PK\x03\x04", fields[0], 0, *fields[1:], len(name), 0) + name)
            left = info.compress_size
            while left:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    raise ValueError("truncated part")
                self.out.write(chunk)
                left -= len(chunk)
            self.central.append(self._central(info, fields, name, offset))
        assert sheet_info is not None
        src.seek(sheet_info.header_offset)
        local = _LOCAL.unpack(src.read(_LOCAL.size))
        self.sheet = sheet_info
        self.name = src.read(local[10])
        self.time_date = (local[5], local[6])
        self.offset = self.out.tell()
        self.out.write(b"\0" * (_LOCAL.size + len(self.name)))  # patched by close()

    @staticmethod
    def _central(info: zipfile.ZipInfo, fields: tuple[int, ...], name: bytes, offset: int) -> bytes:
        return _CENTRAL.pack(
            b"PK\x01\x02", info.create_version, info.create_system, fields[0], 0, *fields[1:], len(name), 0, 0, 0, 0,
            info.external_attr, offset,
        ) + name

    def write(self, data: bytes | memoryview) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self.out.write(data)

    def close(self) -> None:
        if self.size > _ZIP32_MAX or self.out.tell() > _ZIP32_MAX:
            raise ValueError("the half needs zip64")
        fields = (20, self.sheet.flag_bits & ~0x8, zipfile.ZIP_STORED, *self.time_date, self.crc, self.size, self.size)
        directory = self.out.tell()
        self.central.append(self._central(self.sheet, fields, self.name, self.offset))
        for entry in self.central:
            self.out.write(entry)
        size = self.out.tell() - directory
        n = len(self.central)
        self.out.write(_END.pack(b"PK\x05\x06", 0, 0, n, n, size, directory, 0))
        self.out.seek(self.offset)
        self.out.write(_LOCAL.pack(b"PK\x03\x04", fields[0], 0, *fields[1:], len(self.name), 0) + self.name)
        self.out.close()

    def abandon(self) -> None:
        self.out.close()


def renumber_row(row: bytes, number: int) -> bytes:
    """The header row element moved to row ``number``: its ``r`` and every cell reference."""
    close = row.find(b">")
    head = _ROW_NUMBER.sub(b' r="%d"' % number, row[: close + 1], count=1)
    return head + _CELL_REF.sub(rb"\g<1>%d" % number + b'"', row[close + 1:])


class SheetSplitter:
    """Fed the inflated sheet XML chunk by chunk; writes the head, then the tail package.

    ``on_head`` is called with the head package as soon as it is complete. After
    that the split cannot be abandoned any more (a reader is working on it);
    before it, anything unexpected just switches the splitter off (``finish``
    returns None) and the sheet is read whole.
    """

    def __init__(
        self, src: Path, part: str, declared: int, staging: Path, fraction: float,
        on_head: Callable[[Path], None],
    ) -> None:
        self.src, self.part, self.staging, self.on_head = src, part, staging, on_head
        self.head_path, self.tail_path = staging / "half-head.xlsx", staging / "half-tail.xlsx"
        self.broken = False
        self.target = int(declared * fraction)
        self.state = "prefix"  # prefix -> head -> tail, or off
        self.pending = b""  # inflated, not yet written anywhere
        self.written = 0  # bytes of sheet XML in the head so far
        self.recent: list[bytes] = []  # the last chunks, to find the last row
        self.head: _StoredZip | None = None
        self.tail: _StoredZip | None = None
        self.header_row = self.seam_row = 0
        self.opening = self.header = self.closing = self.row_open = self.row_close = b""

    def feed(self, chunk: bytes) -> None:
        if self.state == "off":
            return
        try:
            if self.state == "tail":
                assert self.tail is not None
                if not self.broken:
                    self.tail.write(chunk)
                self.recent = [*self.recent[-1:], chunk]
                return
            self.pending += chunk
            if self.state == "prefix":
                self._find_header()
            if self.state == "head":
                self._find_seam()
        except Exception:  # whatever fails here, the sheet can still be read whole
            if self.state == "tail":
                # The head's reader has started. A tail package left without its directory
                # fails in its reader, and the head then reads the original workbook.
                self.broken = True
            else:
                self._off()

    def _off(self) -> None:
        self.state = "off"
        self.pending = b""
        for z in (self.head, self.tail):
            if z is not None:
                z.abandon()

    def _find_header(self) -> None:
        m = _SHEET_DATA.search(self.pending)
        if m is None or self.pending.find(b"</" + m.group(1) + b"row>", m.end()) < 0:
            if len(self.pending) > _CONTEXT:
                self._off()
            return
        root = _ROOT.search(self.pending, 0, m.start())
        if root is None or m.group(0).endswith(b"/>"):
            self._off()
            return
        prefix = m.group(1)
        self.row_open, self.row_close = b"<" + prefix + b"row", b"</" + prefix + b"row>"
        self.closing = b"</" + prefix + b"sheetData></" + root.group(1) + b">"
        header_at = self.pending.find(self.row_open, m.end())
        header_end = self.pending.find(self.row_close, m.end()) + len(self.row_close)
        number = self._row_number(self.pending, header_at)
        tag_end = self.pending.find(b">", header_at)
        if (
            header_at < 0 or header_at > header_end or number is None or self.pending[tag_end - 1] == ord("/")
            or self.pending.find(self.row_open, header_at + 1, header_end) >= 0  # exactly one row element
        ):
            self._off()
            return
        self.header_row = number
        self.opening = self.pending[: m.end()]
        self.header = self.pending[header_at:header_end]
        with self.src.open("rb") as fh, zipfile.ZipFile(fh) as zf:
            self.head = _StoredZip(fh, zf.infolist(), self.part, self.head_path)
        self.state = "head"

    def _row_number(self, data: bytes, at: int) -> int | None:
        if at < 0:
            return None
        end = data.find(b">", at, at + 4096)
        found = _ROW_NUMBER.search(data, at, end) if end > 0 else None
        return int(found.group(1)) if found else None

    def _find_seam(self) -> None:
        assert self.head is not None
        start = max(0, self.target - self.written)
        seam = self.pending.find(self.row_close, start) if start < len(self.pending) else -1
        if seam < 0:
            # Everything but the last row's worth (where the seam row may start) is head for sure.
            cut = max(0, len(self.pending) - _ROW_CONTEXT)
            if cut:
                self.head.write(memoryview(self.pending)[:cut])
                self.written += cut
                self.pending = self.pending[cut:]
            return
        seam += len(self.row_close)
        opened = self.pending.rfind(self.row_open, 0, seam)
        number = self._row_number(self.pending, opened)
        if number is None or number <= self.header_row:
            self._off()
            return
        self.seam_row = number
        view = memoryview(self.pending)
        self.head.write(view[:seam])
        self.head.write(self.closing)
        self.head.close()
        with self.src.open("rb") as fh, zipfile.ZipFile(fh) as zf:
            self.tail = _StoredZip(fh, zf.infolist(), self.part, self.tail_path)
        self.tail.write(self.opening)
        self.tail.write(renumber_row(self.header, number))
        rest = bytes(view[seam:])
        view.release()
        self.tail.write(rest)
        self.recent = [rest]
        self.pending = b""
        self.state = "tail"
        self.on_head(self.head_path)

    def finish(self) -> SplitPlan | None:
        """After the last chunk: the plan, or None when the sheet is to be read whole."""
        if self.state != "tail":
            self._off()
            return None
        assert self.tail is not None
        if not self.broken:
            try:
                self.tail.close()
            except Exception:  # the tail's reader then fails; the head reads the original
                self.tail.abandon()
        end = b"".join(self.recent)
        closing = end.rfind(b"sheetData>")
        last = self._row_number(end, end.rfind(self.row_open, 0, closing if closing >= 0 else len(end)))
        return SplitPlan(self.head_path, self.tail_path, self.header_row, self.seam_row, -1 if last is None else last)
