"""Packages written for the reader, inside the reader process, from parts the guard has bounded:

* :func:`head_package` — the first rows of one sheet (its XML cut at a row boundary) with the
  workbook's other parts, so that the reader can look at them in milliseconds;
* :func:`normalize` — a package written by another tool, with its workbook part moved to where the
  reader looks for it (``xl/workbook.xml``) and its relationships pointing there;
* :func:`patch_errors` — a sheet whose error cells hold values the reader refuses (``#SPILL!``,
  ``#CALC!``, ...), each turned into ``#N/A``: still an error cell, null and counted.

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
    """Up to ``limit`` bytes from the start of a part, inflated: bounded whatever the part claims
    (zipfile inflates no more than it is asked for)."""
    with zipfile.ZipFile(src) as package, package.open(info) as part:
        return part.read(limit)


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


def other_sheets(inspection: Inspection, part: str) -> set[str]:
    """The other sheets' parts: a package written for one sheet leaves them out."""
    return {s.part for s in inspection.sheets or [] if s.part and s.part != part}


def head_package(src: Path, inspection: Inspection, part: str, head: bytes) -> bytes:
    """The workbook with ``part`` replaced by ``head`` and every other sheet left out."""
    out = io.BytesIO()
    _write(src, inspection, out, {part: [head]}, drop=other_sheets(inspection, part))
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
