"""Packages written for the reader from parts inflated with the scan's bounds: one sheet's first rows
with the workbook's own parts (:func:`head_package`), the parts a piece of a large sheet is packaged
with (:func:`one_sheet_parts`, :func:`add_sheet`; the pieces are cut by ``pieces.SheetPieces``), a
package another tool wrote with its workbook part moved to where the reader looks (:func:`normalize`),
and a sheet with the error values the reader refuses (``#SPILL!``, ``#CALC!``...) made ``#N/A``
(:func:`patch_errors`).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from sheetdrop_step.converter._job import Limits
from sheetdrop_step.converter._safety.guard import READER_KINDS, SHEET_TYPES, Inspection
from sheetdrop_step.converter._safety.parts import inflate_entry, open_entry, parse_xml, rels_of, resolve

SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b")
_ROW_NUMBER = re.compile(rb'<(?:\w+:)?row\b[^>]*?\sr="(\d+)"')
ROOT = re.compile(rb"<((?:\w+:)?worksheet)\b")
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
        for name in [*(n for n in inspection.entries if n in new or keep(n)), *(n for n in new if n not in
                                                                                 inspection.entries)]:
            with out.open(name, "w", force_zip64=True) as part:
                made = new.get(name)
                if isinstance(made, bytes):
                    part.write(made)
                elif made is not None:
                    made(part.write)
                else:
                    inflate_entry(fh, inspection.entries[name], limits, 0, part.write)


def read_head(src: Path, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Up to ``limit`` bytes from the start of a part, inflated: bounded whatever the part claims
    (zipfile inflates no more than it is asked for)."""
    with open_entry(src, info) as part:
        return part.read(limit)


def rows_from(src: Path, info: zipfile.ZipInfo, first_row: int, limit: int) -> bytes | None:
    """The sheet's XML before its rows, then its rows from ``first_row`` (from 0) on, ``limit`` bytes
    of them at most: the first rows of a range that starts past :func:`read_head`'s bytes (inflated
    up to there, no further). None: no numbered row there."""
    prolog: bytes | None = None
    kept, pending = bytearray(), b""
    with open_entry(src, info) as part:
        while len(kept) < limit and (chunk := part.read(1 << 20)):
            if kept:
                kept += chunk
                continue
            data, pending = pending + chunk, b""
            if prolog is None:
                opened = SHEET_DATA.search(data)
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
    data, root = SHEET_DATA.search(xml), ROOT.search(xml)
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


def normalize(src: Path, inspection: Inspection, dst: Path, limits: Limits) -> None:
    """A copy of the package in Excel's layout, where the reader looks for each part: the workbook part
    as ``xl/workbook.xml``, its relationships at ``xl/_rels/workbook.xml.rels`` with every target made
    absolute, its styles and shared strings as ``xl/styles.xml`` and ``xl/sharedStrings.xml`` (the reader
    takes them from there, whatever the relationships say), the package pointing there; sheets of a
    kind the reader refuses (macro sheets) left out of the workbook (they are skipped anyway)."""
    part, small = inspection.workbook_part, inspection.small
    moved = {name: to for name, to in ((inspection.styles_part, "xl/styles.xml"),
                                       (inspection.strings_part, "xl/sharedStrings.xml")) if name}
    workbook = small[part]
    rels = inspection.part(rels_of(part)) or b""
    refused: list[str] = []
    for rel in parse_xml(rels_of(part), rels) if rels else ():
        target, kind = rel.get("Target", ""), rel.get("Type", "").rsplit("/", 1)[-1]
        if rel.get("TargetMode") == "External":
            continue
        name = resolve(part, target)
        name = moved.get(inspection.find(name) or name, name)
        if kind in SHEET_TYPES and SHEET_TYPES[kind] not in READER_KINDS:
            refused.append(rel.get("Id", ""))
        rels = rels.replace(f'Target="{target}"'.encode(), f'Target="/{name}"'.encode())
    for rel_id in refused:
        workbook = re.sub(rb"<(\w+:)?sheet\b[^>]*?\bid=\"" + re.escape(rel_id.encode()) + rb"\"[^>]*/>", b"", workbook)
    new: dict[str, bytes | Callable[[Callable[[bytes], None]], None]] = {"xl/workbook.xml": workbook}
    if rels:
        new["xl/_rels/workbook.xml.rels"] = rels
    package_rels = inspection.part("_rels/.rels") or b""
    for quoted in re.findall(rb'Target="([^"]*)"', package_rels):
        target = resolve("", quoted.decode())
        if (inspection.find(target) or target) == part:
            package_rels = package_rels.replace(b'"' + quoted + b'"', b'"xl/workbook.xml"')
    new["_rels/.rels"] = package_rels
    types = inspection.part("[Content_Types].xml")
    if types is not None:
        new["[Content_Types].xml"] = types.replace(f'"/{part}"'.encode(), b'"/xl/workbook.xml"')
    for old, to in moved.items():
        new[to] = lambda write, old=old: _inflated(src, inspection, old, limits, write)
    gone = {part, rels_of(part), *moved, *(inspection.find(n) for n in ("_rels/.rels", "[Content_Types].xml",
                                                                         rels_of(part)))}
    with zipfile.ZipFile(dst, "w") as out:
        _repackage(src, inspection, out, limits, new, lambda name: name not in gone)


def _inflated(src: Path, inspection: Inspection, name: str, limits: Limits, write: Callable[[bytes], None]) -> None:
    with src.open("rb") as fh:
        inflate_entry(fh, inspection.entries[name], limits, 0, write)


# Whitespace between elements around a table element (before one, or after one's tag): no cell holds it.
_SPACING = re.compile(rb"(>)\s+(?=</?table:)|(<table:[^>]*>|</table:[\w-]+>)\s+(?=<)")


def ods_without_spacing(src: Path, inspection: Inspection, dst: Path, limits: Limits) -> None:
    """A copy of an .ods whose content.xml has no whitespace between its table elements (indented XML:
    the text of a cell is in its paragraphs, which keep theirs)."""
    def content(write: Callable[[bytes], None]) -> None:
        pending = b""

        def sink(chunk: bytes) -> None:
            nonlocal pending
            data = pending + chunk
            cut = data.rfind(b">") + 1  # up to the last tag's end: no run of whitespace is split
            write(_SPACING.sub(rb"\1\2", data[:cut]))
            pending = data[cut:]

        with src.open("rb") as fh:
            inflate_entry(fh, inspection.entries["content.xml"], limits, 0, sink)
        write(pending)

    with zipfile.ZipFile(dst, "w") as out:
        _repackage(src, inspection, out, limits, {"content.xml": content}, lambda name: True)


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
