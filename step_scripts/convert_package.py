"""Packages written for the reader from parts inflated with the scan's bounds: one sheet's first rows
with the workbook's own parts (:func:`head_package`), a package another tool wrote with its workbook
part moved to where the reader looks (:func:`normalize`), and a sheet with the error values the reader
refuses (``#SPILL!``, ``#CALC!``...) made ``#N/A`` (:func:`patch_errors`).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

from convert_guard import Inspection, parse_xml, rels_of, resolve
from convert_job import Limits
from convert_scan import inflate_entry

_SHEET_DATA = re.compile(rb"<((?:\w+:)?)sheetData\b")
_ROOT = re.compile(rb"<((?:\w+:)?worksheet)\b")
#: The error values calamine 0.36 knows in an xlsx cell of type "e" (it refuses any other).
KNOWN_ERRORS = (b"#DIV/0!", b"#N/A", b"#NAME?", b"#NULL!", b"#NUM!", b"#REF!", b"#VALUE!")
_ERROR_CELL = re.compile(rb'(<(?:\w+:)?c\b[^>]*\bt="e"[^>]*>(?:<(?:\w+:)?f\b[^>]*(?:/>|>[^<]*</(?:\w+:)?f>))?'
                         rb"<((?:\w+:)?)v>)([^<]*)(</)")
# What a package written for one sheet leaves out: the other sheets and what only they use.
_SHEET_ONLY = ("xl/worksheets/", "xl/drawings/", "xl/charts/", "xl/media/", "xl/printerSettings/")


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


def head_package(src: Path, inspection: Inspection, part: str, head: bytes, limits: Limits) -> bytes:
    """The workbook's own parts (styles, shared strings...) with ``part`` replaced by ``head``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        _repackage(src, inspection, out, limits, {part: head}, lambda name: not name.startswith(_SHEET_ONLY))
    return buffer.getvalue()


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
