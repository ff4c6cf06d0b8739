"""Packages written for the reader, inside the reader process, from parts the guard has bounded:

* :func:`head_package` — the first rows of one sheet (its XML cut at a row boundary) with the
  workbook's other parts, so that the reader can look at them in milliseconds;
* :func:`normalize` — a package written by another tool, with its workbook part moved to where the
  reader looks for it (``xl/workbook.xml``) and its relationships pointing there;
* :func:`patch_errors` — a sheet whose error cells hold values the reader refuses (``#SPILL!``,
  ``#CALC!``, ...), each turned into ``#N/A``: still an error cell, null and counted;
* :class:`PartWriter` — one large sheet as several packages of consecutive rows, so that several
  readers share its parse.

Every part not rewritten is copied as compressed in the original, byte for byte, so the reader
inflates it exactly as it would there.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from convert_guard import Inspection, parse_xml, rels_of, resolve
from convert_job import Limits
from convert_scan import CHUNK, inflate_entry

_LOCAL = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # zipfile.structCentralDir
_END = struct.Struct("<4s4H2LH")  # zipfile.structEndArchive
_ZIP32_MAX = 0xFFFFFFFF
_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b")
_ROW_NUMBER = re.compile(rb'<(?:\w+:)?row\b[^>]*?\br="(\d+)"')
_HOLDS_VALUE = re.compile(rb"<(?:\w+:)?(?:v>[^<]|is>)")
#: Bytes of sheet XML kept back for the seam search: longer rows turn a split off.
ROW_CONTEXT = 256 * 1024
_ROOT = re.compile(rb"<((?:\w+:)?worksheet)\b")
#: The error values calamine 0.36 knows in an xlsx cell of type "e" (it refuses any other).
KNOWN_ERRORS = (b"#DIV/0!", b"#N/A", b"#NAME?", b"#NULL!", b"#NUM!", b"#REF!", b"#VALUE!")
_ERROR_CELL = re.compile(rb'(<(?:\w+:)?c\b[^>]*\bt="e"[^>]*>(?:<(?:\w+:)?f\b[^>]*(?:/>|>[^<]*</(?:\w+:)?f>))?'
                         rb"<((?:\w+:)?)v>)([^<]*)(</)")


class _Writer:
    """A zip package written entry by entry: raw copies of the source's entries, or new stored ones."""

    def __init__(self, out: BinaryIO, src: BinaryIO) -> None:
        self.out, self.src, self.central = out, src, []

    def copy(self, name: str, info: zipfile.ZipInfo) -> None:
        self.src.seek(info.header_offset)
        local = _LOCAL.unpack(self.src.read(_LOCAL.size))
        self.src.seek(local[10] + local[11], 1)
        fields = (max(info.extract_version, 20), info.flag_bits & ~0x8 & ~0x800, info.compress_type,
                  info.CRC, info.compress_size, info.file_size)
        self._header(name, fields)
        left = info.compress_size
        while left:
            chunk = self.src.read(min(left, CHUNK))
            if not chunk:
                raise ValueError(f"part {name!r} is truncated")
            self.out.write(chunk)
            left -= len(chunk)

    def store(self, name: str, chunks: Iterable[bytes]) -> None:
        self.begin(name)
        for chunk in chunks:
            self.write(chunk)
        self.end()

    def begin(self, name: str) -> None:
        """A stored entry whose content follows through :meth:`write`; sizes are filled in by :meth:`end`."""
        self.entry = (name, self.out.tell())
        self.crc = self.size = 0
        self._header(name, (20, 0, zipfile.ZIP_STORED, 0, 0, 0))

    def write(self, chunk: bytes | memoryview) -> None:
        self.crc, self.size = zlib.crc32(chunk, self.crc), self.size + len(chunk)
        self.out.write(chunk)

    def end(self) -> None:
        if self.size >= _ZIP32_MAX:
            raise ValueError(f"part {self.entry[0]!r} needs zip64")
        name, at = self.entry
        end = self.out.tell()
        self.out.seek(at)
        self.central.pop()
        self._header(name, (20, 0, zipfile.ZIP_STORED, self.crc, self.size, self.size))
        self.out.seek(end)

    def _header(self, name: str, fields: tuple[int, ...]) -> None:
        raw, offset = name.encode(), self.out.tell()
        if offset >= _ZIP32_MAX:
            raise ValueError("the package needs zip64")
        self.out.write(_LOCAL.pack(b"PK\x03\x04", fields[0], 0, fields[1], fields[2], 0, 0x21, *fields[3:],
                                   len(raw), 0) + raw)
        self.central.append(_CENTRAL.pack(b"PK\x01\x02", 20, 0, fields[0], 0, fields[1], fields[2], 0, 0x21,
                                          *fields[3:], len(raw), 0, 0, 0, 0, 0, offset) + raw)

    def close(self) -> None:
        directory = self.out.tell()
        for entry in self.central:
            self.out.write(entry)
        n = len(self.central)
        self.out.write(_END.pack(b"PK\x05\x06", 0, 0, n, n, self.out.tell() - directory, directory, 0))


def _write(src: Path, inspection: Inspection, out: BinaryIO, new: dict[str, Iterable[bytes]],
           drop: set[str] = frozenset(), fill: tuple[str, Callable[[_Writer], None]] | None = None) -> None:
    """The package with the parts in ``new`` (re)written stored, ``drop`` left out, and the part named
    by ``fill`` written by its callback; every other part copied."""
    with src.open("rb") as fh:
        writer = _Writer(out, fh)
        for name, info in inspection.entries.items():
            if fill is not None and name == fill[0]:
                writer.begin(name)
                fill[1](writer)
                writer.end()
            elif name in new:
                writer.store(name, new.pop(name))
            elif name not in drop:
                writer.copy(name, info)
        for name, chunks in new.items():
            writer.store(name, chunks)
        writer.close()


def read_head(src: Path, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Up to ``limit`` bytes from the start of a part, inflated: bounded whatever the part claims."""
    with src.open("rb") as fh:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            with zipfile.ZipFile(fh).open(info) as part:
                return part.read(limit)
        fh.seek(info.header_offset)
        local = _LOCAL.unpack(fh.read(_LOCAL.size))
        fh.seek(local[10] + local[11], 1)
        raw = fh.read(min(info.compress_size, limit if info.compress_type == zipfile.ZIP_STORED else CHUNK * 4))
        if info.compress_type == zipfile.ZIP_STORED:
            return raw
        try:
            return zlib.decompressobj(-15).decompress(raw, limit)
        except zlib.error:
            return b""  # the bounded scan reports the damage


def sheet_head(xml: bytes, rows: int) -> bytes | None:
    """The start of a sheet's XML cut after ``rows`` rows (or the last whole row), then closed."""
    data = _SHEET_DATA.search(xml)
    root = _ROOT.search(xml)
    if data is None or root is None:
        return None
    close = b"</" + data.group(1) + b"row>"
    end = data.end()
    for _ in range(rows):
        found = xml.find(close, end)
        if found < 0:
            break
        end = found + len(close)
    if end == data.end():
        return None
    return xml[:end] + b"</" + data.group(1) + b"sheetData></" + root.group(1) + b">"


def _other_sheets(inspection: Inspection, part: str) -> set[str]:
    """The other sheets' parts: a package written for one sheet leaves them out."""
    return {s.part for s in inspection.sheets or [] if s.part and s.part != part}


def head_package(src: Path, inspection: Inspection, part: str, head: bytes) -> bytes:
    """The workbook with ``part`` replaced by ``head`` and every other sheet left out."""
    out = io.BytesIO()
    _write(src, inspection, out, {part: [head]}, drop=_other_sheets(inspection, part))
    return out.getvalue()


def normalize(src: Path, inspection: Inspection, dst: Path) -> None:
    """A copy of the package whose workbook part is ``xl/workbook.xml`` with its relationships at
    ``xl/_rels/workbook.xml.rels``, targets made absolute, and the package pointing there."""
    part, small = inspection.workbook_part, inspection.small
    new: dict[str, Iterable[bytes]] = {"xl/workbook.xml": [small[part]]}
    if rels_of(part) in small:
        rels = small[rels_of(part)]
        for rel in parse_xml(rels_of(part), rels):
            target = rel.get("Target", "")
            if rel.get("TargetMode") != "External" and not target.startswith("/"):
                rels = rels.replace(f'Target="{target}"'.encode(), f'Target="/{resolve(part, target)}"'.encode())
        new["xl/_rels/workbook.xml.rels"] = [rels]
    new["_rels/.rels"] = [small["_rels/.rels"].replace(_attr(small["_rels/.rels"], part), b'"xl/workbook.xml"')]
    if "[Content_Types].xml" in small:
        new["[Content_Types].xml"] = [small["[Content_Types].xml"].replace(f'"/{part}"'.encode(),
                                                                          b'"/xl/workbook.xml"')]
    with dst.open("wb") as out:
        _write(src, inspection, out, new, drop={part, rels_of(part)})


def _attr(rels: bytes, part: str) -> bytes:
    """The quoted target in ``_rels/.rels`` that names ``part``."""
    for quoted in re.findall(rb'Target="([^"]*)"', rels):
        if resolve("", quoted.decode()) == part:
            return b'"' + quoted + b'"'
    return b'"' + part.encode() + b'"'


def patch_errors(src: Path, inspection: Inspection, part: str, dst: Path, limits: Limits) -> int:
    """A copy of the package with the sheet ``part``'s unknown error values replaced by ``#N/A``;
    returns how many were replaced. The sheet is inflated again with the scan's bounds."""
    replaced = 0
    pending = b""

    def fix(m: re.Match[bytes]) -> bytes:
        nonlocal replaced
        if m.group(3) in KNOWN_ERRORS:
            return m.group(0)
        replaced += 1
        return m.group(1) + b"#N/A" + m.group(4)

    def fill(writer: _Writer) -> None:
        def sink(chunk: bytes) -> None:
            nonlocal pending
            # Whole rows at a time, so that no cell is cut between two substitutions.
            data = pending + chunk
            cut = data.rfind(b"row>") + 4
            writer.write(_ERROR_CELL.sub(fix, data[:cut]))
            pending = data[cut:]

        with src.open("rb") as fh:
            inflate_entry(fh, inspection.entries[part], limits, 0, sink)
        writer.write(_ERROR_CELL.sub(fix, pending))

    with dst.open("wb") as out:
        _write(src, inspection, out, {}, fill=(part, fill))
    return replaced


class PartWriter:
    """Fed a sheet's XML as the bounded scan inflates it; writes it as packages of about ``part_bytes``
    of rows each and calls ``ready(path)`` for each one as soon as it is complete.

    A part is cut after a row holding a value (its number goes to ``seams``). So that each part's
    rows line up exactly with the sheet's, a *sentinel* row holding one text cell in column A is
    added just outside the part's rows: at ``seam + 1`` after the rows of every part but the last,
    at the previous seam before the rows of every part but the first. The reader's range then starts
    and ends on known rows, and the sentinel rows are dropped after reading. Anything unexpected
    (a row without its number, a row longer than ``ROW_CONTEXT``) raises ValueError.
    """

    def __init__(self, src: Path, inspection: Inspection, part: str, staging: Path, part_bytes: int,
                 ready: Callable[[Path], None]) -> None:
        self.src, self.inspection, self.part, self.staging = src, inspection, part, staging
        self.part_bytes, self.ready = part_bytes, ready
        self.pending = self.prologue = self.prefix = self.root = b""
        self.written = 0
        self.seams: list[int] = []
        self.writer: _Writer | None = None

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        if self.writer is None:
            found = _SHEET_DATA.search(self.pending)
            end = self.pending.find(b">", found.end()) + 1 if found else 0
            root = _ROOT.search(self.pending)
            if not end or root is None:
                if len(self.pending) > ROW_CONTEXT:
                    raise ValueError("no sheetData near the start of the sheet")
                return
            self.prologue, self.prefix, self.root = self.pending[:end], found.group(1), root.group(1)
            self.pending = self.pending[end:]
            self._open(None)
        while (cut := self._seam(max(0, self.part_bytes - self.written))) is not None:
            self._close(self.pending[:cut[0]], cut[1])
            self.pending = self.pending[cut[0]:]
            self._open(cut[1])
        if len(self.pending) > ROW_CONTEXT:  # what no seam search needs any more goes to the part now
            with memoryview(self.pending) as view:
                self._emit(view[:-ROW_CONTEXT])
            self.pending = self.pending[-ROW_CONTEXT:]

    def finish(self) -> None:
        if self.writer is None:
            raise ValueError("the sheet has no rows")
        end = self.pending.find(b"</" + self.prefix + b"sheetData>")
        self._close(self.pending[:end if end >= 0 else len(self.pending)], None)

    def _seam(self, start: int) -> tuple[int, int] | None:
        """(offset after the row, its number) of the first row ending past ``start`` that holds a value."""
        close = b"</" + self.prefix + b"row>"
        while start < len(self.pending) and (end := self.pending.find(close, start)) >= 0:
            end += len(close)
            row = self.pending.rfind(b"<" + self.prefix + b"row", 0, end)
            number = _ROW_NUMBER.match(self.pending, row, self.pending.find(b">", row) + 1) if row >= 0 else None
            if number is None or self.pending.find(close, row, end - len(close)) >= 0:
                raise ValueError("a row without its number, or longer than the row context")
            if _HOLDS_VALUE.search(self.pending, row, end):
                return end, int(number.group(1))
            start = end
        return None

    def _emit(self, data: bytes | memoryview) -> None:
        assert self.writer is not None
        self.writer.write(data)
        self.written += len(data)

    def _sentinel(self, row: int) -> bytes:
        p = self.prefix
        return b'<%srow r="%d"><%sc r="A%d" t="inlineStr"><%sis><%st>-</%st></%sis></%sc></%srow>' % (
            p, row, p, row, p, p, p, p, p, p)

    def _open(self, after: int | None) -> None:
        self.path = self.staging / f"part-{len(self.seams)}{self.src.suffix}"
        self.out, self.source = self.path.open("wb"), self.src.open("rb")
        self.writer = _Writer(self.out, self.source)
        for name, info in self.inspection.entries.items():
            if name != self.part and name not in _other_sheets(self.inspection, self.part):
                self.writer.copy(name, info)
        self.writer.begin(self.part)
        self.writer.write(self.prologue + (self._sentinel(after) if after is not None else b""))
        self.written = 0

    def _close(self, rows: bytes, seam: int | None) -> None:
        assert self.writer is not None
        self._emit(rows + (self._sentinel(seam + 1) if seam is not None else b"")
                   + b"</" + self.prefix + b"sheetData></" + self.root + b">")
        self.writer.end()
        self.writer.close()
        self.out.close()
        self.source.close()
        self.seams.append(seam if seam is not None else -1)
        self.ready(self.path)
