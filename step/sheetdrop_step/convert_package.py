"""Packages written for the reader from parts inflated with the scan's bounds: one sheet's first rows
with the workbook's own parts (:func:`head_package`), a large sheet cut at row starts into pieces
parsed at once (:class:`SheetPieces`), a package another tool wrote with its workbook part moved to
where the reader looks (:func:`normalize`), and a sheet with the error values the reader refuses
(``#SPILL!``, ``#CALC!``...) made ``#N/A`` (:func:`patch_errors`).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sheetdrop_step.convert_guard import Inspection, parse_xml, rels_of, resolve
from sheetdrop_step.convert_job import Limits
from sheetdrop_step.convert_scan import SheetMarks, cell_kinds, inflate_entry

_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b")
_ROW_NUMBER = re.compile(rb'<(?:\w+:)?row\b[^>]*?\sr="(\d+)"')
_ROOT = re.compile(rb"<((?:\w+:)?worksheet)\b")
#: The error values calamine 0.36 knows in an xlsx cell of type "e" (it refuses any other).
KNOWN_ERRORS = (b"#DIV/0!", b"#N/A", b"#NAME?", b"#NULL!", b"#NUM!", b"#REF!", b"#VALUE!")
_ERROR_CELL = re.compile(rb'(<(?:\w+:)?c\b[^>]*\bt="e"[^>]*>(?:<(?:\w+:)?f\b[^>]*(?:/>|>[^<]*</(?:\w+:)?f>))?'
                         rb"<((?:\w+:)?)v>)([^<]*)(</)")
# What a package written for one sheet leaves out: the other sheets and what only they use.
SHEET_ONLY = ("xl/worksheets/", "xl/drawings/", "xl/charts/", "xl/media/", "xl/printerSettings/")


def _repackage(src: Path, inspection: Inspection, out: zipfile.ZipFile, limits: Limits,
               new: dict[str, bytes | Callable[[Callable[[bytes], None]], None]], keep: Callable[[str], bool]) -> None:
    """Every part ``keep`` accepts, inflated with bounds, or as ``new`` gives it (bytes, or a function
    writing it chunk by chunk); then the parts of ``new`` the source lacks."""
    with src.open("rb") as fh:
        for name, info in inspection.entries.items():
            if name in new or keep(name):
                with out.open(name, "w", force_zip64=True) as part:
                    made = new.get(name)
                    if isinstance(made, bytes):
                        part.write(made)
                    elif made is not None:
                        made(part.write)
                    else:
                        inflate_entry(fh, info, limits, 0, part.write)
        for name, made in new.items():
            if name not in inspection.entries:
                out.writestr(name, made if isinstance(made, bytes) else b"")


def read_head(src: Path, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Up to ``limit`` bytes from the start of a part, inflated: bounded whatever the part claims
    (zipfile inflates no more than it is asked for)."""
    with zipfile.ZipFile(src) as package, package.open(info) as part:
        return part.read(limit)


def rows_from(src: Path, info: zipfile.ZipInfo, first_row: int, limit: int) -> bytes | None:
    """The sheet's XML before its rows, then its rows from ``first_row`` (from 0) on, ``limit`` bytes
    of them at most: the first rows of a range that starts past :func:`read_head`'s bytes (inflated
    up to there, no further). None: no numbered row there."""
    prolog: bytes | None = None
    kept, pending = bytearray(), b""
    with zipfile.ZipFile(src) as package, package.open(info) as part:
        while len(kept) < limit and (chunk := part.read(1 << 20)):
            if kept:
                kept += chunk
                continue
            data, pending = pending + chunk, b""
            if prolog is None:
                opened = _SHEET_DATA.search(data)
                end = data.find(b">", opened.end()) if opened else -1
                if end < 0:
                    pending = data[-limit:]
                    continue
                prolog, data = data[:end + 1], data[end + 1:]
            start = next((m.start() for m in _ROW_NUMBER.finditer(data) if int(m[1]) > first_row), None)
            if start is None:
                pending = data[-4096:]  # a row start cut by the chunk's end is found again
            else:
                kept += data[start:]
    return prolog + bytes(kept[:limit]) if prolog is not None and kept else None


def sheet_head(xml: bytes, rows: int) -> bytes | None:
    """The start of a sheet's XML cut after ``rows`` rows (or the last whole row), then closed."""
    data, root = _SHEET_DATA.search(xml), _ROOT.search(xml)
    if data is None or root is None:
        return None
    close, end = b"</" + data.group(1) + b"row>", data.end()
    for _ in range(rows):
        found = xml.find(close, end)
        if found < 0:
            break
        end = found + len(close)
    return None if end == data.end() else xml[:end] + b"</" + data.group(1) + b"sheetData></" + root.group(1) + b">"


def one_sheet_parts(src: Path, inspection: Inspection, part: str, limits: Limits) -> bytes:
    """A package of the workbook's own parts (styles, shared strings...) without its sheets: the sheet
    ``part`` is added by :func:`add_sheet`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        _repackage(src, inspection, out, limits, {}, lambda name: name != part and not name.startswith(SHEET_ONLY))
    return buffer.getvalue()


def add_sheet(dst: BinaryIO, parts: bytes, part: str, xml: Iterable[bytes | memoryview]) -> None:
    dst.write(parts)
    with zipfile.ZipFile(dst, "a") as out, out.open(part, "w", force_zip64=True) as sheet:
        for chunk in xml:
            sheet.write(chunk)


def head_package(src: Path, inspection: Inspection, part: str, head: bytes, limits: Limits) -> bytes:
    """The workbook's own parts with ``part`` replaced by ``head``."""
    buffer = io.BytesIO()
    add_sheet(buffer, one_sheet_parts(src, inspection, part, limits), part, [head])
    return buffer.getvalue()


@dataclass
class Piece:
    path: Path  # a package of the workbook's own parts and some of the sheet's rows
    first: int  # the sheet's row (from 0) its rows start at; the rows before it are in earlier pieces


class SheetPieces:
    """A sheet's XML, fed as it is inflated, cut at row starts into packages of about ``size`` bytes,
    each handed to ``ready`` once written; its boolean and text cells counted on the way. Every piece
    keeps the XML before the rows (the reader needs no more) and ends its sheet; a row starting a piece
    carries its number (a row without one continues the count of the row before it). Where no such cut
    is found within a few pieces' size, or rows are out of order at a cut (invalid OOXML, and a piece
    would hide the earlier row), the sheet is to be read ``whole``: nothing more is kept or written.
    Rows are not checked for order inside a piece (a Python pass over every row number costs 0.2 s per
    100k rows): the row right before a piece's first, if the piece holds it, sends the sheet to a
    whole read (``FastexcelBook.load``'s ``lacks_before``); one numbered earlier still, which no tool
    writes, would be lost."""

    def __init__(self, parts: Callable[[], bytes], part: str, stem: Path, size: int,
                 ready: Callable[[Piece], None], marks: SheetMarks | None = None) -> None:
        self.part, self.stem, self.size, self.ready = part, stem, size, ready
        self.parts: Callable[[], bytes] | bytes = parts  # made when the first piece is written
        self.buffer = bytearray()
        self.prolog: bytes | None = None
        self.rows: re.Pattern[bytes] | None = None
        self.first = self.written = self.bools = self.texts = 0
        self.after, self.whole = size, False
        self.marks = marks or SheetMarks()  # merged cells, formulas without a value

    def feed(self, chunk: bytes) -> None:
        self.marks.feed(chunk)
        if self.whole:
            return
        self.buffer += chunk
        if self.prolog is None:
            data = _SHEET_DATA.search(self.buffer, max(0, len(self.buffer) - len(chunk) - 64))
            root = _ROOT.search(self.buffer, 0, data.start()) if data else None
            end = self.buffer.find(b">", data.end()) if data and root else -1
            if end >= 0:
                prefix, worksheet = data.group(1), root.group(1)  # (a match reads the buffer, which changes)
                self.prolog = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                self.start = b"<" + prefix + b"row"
                self.closing = b"</" + prefix + b"sheetData></" + worksheet + b">"
                # A row with its number, or the end of the rows: no cut past it.
                self.rows = None if self.prolog.endswith(b"/>") else re.compile(
                    rb"<" + re.escape(prefix) + rb'row\b[^>]*?\sr="(\d+)"|</' + re.escape(prefix) + rb"sheetData>")
        while self.rows is not None and len(self.buffer) > self.size and self._cut():
            pass
        if len(self.buffer) > 4 * self.size + len(chunk):
            self.whole, self.buffer = True, bytearray()

    def _cut(self) -> bool:
        """A piece written up to the first row start past ``size``; False: none yet, or no more."""
        assert self.rows is not None
        found = self.rows.search(self.buffer, self.after)
        if found is None:
            self.after = max(self.size, len(self.buffer) - 4096)  # searched up to here
            return False
        if found.group(1) is None:
            self.rows = None
            return False
        at, row = found.start(), int(found.group(1))  # (a match reads the buffer, which changes)
        before = self.rows.match(self.buffer, max(0, self.buffer.rfind(self.start, 0, at)))
        if before is not None and before.group(1) and int(before.group(1)) >= row:
            self.whole, self.rows, self.buffer = True, None, bytearray()
            return False
        with memoryview(self.buffer) as view:
            self._write([view[:at], self.closing], at)
        del self.buffer[:at]
        self.first, self.after = row - 1, self.size
        return True

    def finish(self) -> None:
        if not self.whole:
            self._write([self.buffer], len(self.buffer))

    def _write(self, rows: list[bytes | memoryview], end: int) -> None:
        bools, texts = cell_kinds(self.buffer, end)
        self.bools, self.texts = self.bools + bools, self.texts + texts
        path = self.stem.with_name(f"{self.stem.stem}-{self.written}{self.stem.suffix}")
        self.parts = self.parts if isinstance(self.parts, bytes) else self.parts()
        with path.open("w+b") as fh:
            add_sheet(fh, self.parts, self.part, [self.prolog or b"", *rows])
        self.written += 1
        self.ready(Piece(path, self.first))


def normalize(src: Path, inspection: Inspection, dst: Path, limits: Limits) -> None:
    """A copy of the package whose workbook part is ``xl/workbook.xml`` with its relationships at
    ``xl/_rels/workbook.xml.rels``, targets made absolute, and the package pointing there."""
    part, small = inspection.workbook_part, inspection.small
    new: dict[str, bytes | Callable[[Callable[[bytes], None]], None]] = {"xl/workbook.xml": small[part]}
    if rels_of(part) in small:
        rels = small[rels_of(part)]
        for rel in parse_xml(rels_of(part), rels):
            target = rel.get("Target", "")
            if rel.get("TargetMode") != "External" and not target.startswith("/"):
                rels = rels.replace(f'Target="{target}"'.encode(), f'Target="/{resolve(part, target)}"'.encode())
        new["xl/_rels/workbook.xml.rels"] = rels
    package_rels = small["_rels/.rels"]
    for quoted in re.findall(rb'Target="([^"]*)"', package_rels):
        if resolve("", quoted.decode()) == part:
            package_rels = package_rels.replace(b'"' + quoted + b'"', b'"xl/workbook.xml"')
    new["_rels/.rels"] = package_rels
    if "[Content_Types].xml" in small:
        new["[Content_Types].xml"] = small["[Content_Types].xml"].replace(f'"/{part}"'.encode(), b'"/xl/workbook.xml"')
    with zipfile.ZipFile(dst, "w") as out:
        _repackage(src, inspection, out, limits, new, lambda name: name not in (part, rels_of(part)))


def patch_errors(src: Path, inspection: Inspection, part: str, dst: Path, limits: Limits) -> int:
    """A copy of the package with the sheet ``part``'s unknown error values replaced by ``#N/A``;
    returns how many were replaced."""
    replaced, pending = 0, b""

    def fix(m: re.Match[bytes]) -> bytes:
        nonlocal replaced
        if m.group(3) in KNOWN_ERRORS:
            return m.group(0)
        replaced += 1
        return m.group(1) + b"#N/A" + m.group(4)

    def sheet(write: Callable[[bytes], None]) -> None:
        def sink(chunk: bytes) -> None:
            nonlocal pending
            data = pending + chunk  # whole rows at a time: no cell is cut between two substitutions
            cut = data.rfind(b"row>") + 4
            write(_ERROR_CELL.sub(fix, data[:cut]))
            pending = data[cut:]

        with src.open("rb") as fh:
            inflate_entry(fh, inspection.entries[part], limits, 0, sink)
        write(_ERROR_CELL.sub(fix, pending))

    with zipfile.ZipFile(dst, "w") as out:
        _repackage(src, inspection, out, limits, {part: sheet}, lambda name: True)
    return replaced
