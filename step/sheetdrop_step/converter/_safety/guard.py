"""The quick guard: what kind of file this is (from its bytes, never its name) and whether a reader may
be started on it; milliseconds. The file size, the zip directory (entry count, declared sizes and
ratios, encryption), every small part inflated with bounds (``parts.inflate_entry``), and the
package read the way its relationships describe it, whatever tool wrote it: entry names with
backslashes, the workbook part wherever ``_rels/.rels`` points (``_reading.packages.normalize`` then
rewrites it for the reader). The sheets and large parts are left to the bounded scan (``deferred``).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from sheetdrop_step.converter._job import Limits
from sheetdrop_step.converter._reading import xlsb
from sheetdrop_step.converter._reading.xls import legacy_biff
from sheetdrop_step.converter._rejection import WorkbookRejected
from sheetdrop_step.converter._safety.parts import (
    QUICK_ENTRY_BYTES,
    check_declared,
    inflate_entry,
    parse_xml,
    rels_of,
    resolve,
)

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
XLSX_MAIN_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml": "xlsm",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": "xlsx",
    "application/vnd.ms-excel.template.macroEnabled.main+xml": "xlsm",
}
ODS_MIMETYPES = {b"application/vnd.oasis.opendocument.spreadsheet",
                 b"application/vnd.oasis.opendocument.spreadsheet-template"}
OFFICE_DOCUMENT = "/officeDocument"
#: The first bytes of an .xlsb sheet part: its dimension record comes first.
XLSB_HEAD_BYTES = 64 * 1024
# An OLE directory entry named Workbook or Book in any letter case (UTF-16LE, NUL-terminated).
_OLE_WORKBOOK = re.compile(rb"(?:w\0o\0r\0k\0)?b\0o\0o\0k\0\0\0", re.IGNORECASE)


@dataclass
class SheetInfo:
    """What the guard learned about one sheet of an xlsx/xlsm without parsing it."""

    name: str
    state: str = "visible"  # visible | hidden | veryHidden
    kind: str = "worksheet"  # worksheet | chartsheet | dialogsheet | macrosheet
    part: str | None = None  # zip entry name of the sheet


@dataclass
class Inspection:
    fmt: str  # xlsx | xlsm | xlsb | xls | ods
    sheets: list[SheetInfo] | None = None  # known for xlsx/xlsm only
    date1904: bool = False
    deferred: list[zipfile.ZipInfo] = field(default_factory=list)  # left for the bounded scan
    inflated: int = 0  # bytes inflated so far, against max_uncompressed_bytes
    entries: dict[str, zipfile.ZipInfo] = field(default_factory=dict)  # by normalized name
    small: dict[str, bytes] = field(default_factory=dict)  # the package's own small parts, as inflated
    workbook_part: str = "xl/workbook.xml"
    #: The workbook's styles and shared strings parts (entry names), as its relationships name them.
    styles_part: str | None = None
    strings_part: str | None = None
    #: An .xls that is a BIFF stream without a compound file (Excel 2.x-4.0): its BIFF version.
    biff: int | None = None
    #: Whether every relationship of the workbook names its part as the reader resolves it (absolute,
    #: or relative to the workbook's folder without ``..``) and no sheet is of a kind the reader refuses.
    plain_relationships: bool = True

    def find(self, name: str) -> str | None:
        """The entry a part name means: the same name, or the same in another letter case (part names
        compare case-insensitively, and some tools write ``[content_types].xml``)."""
        if name in self.entries:
            return name
        return next((entry for entry in self.entries if entry.lower() == name.lower()), None)

    def part(self, name: str) -> bytes | None:
        """A small part the guard inflated, by its name in any letter case."""
        found = self.find(name)
        return self.small.get(found) if found is not None else None

    @property
    def canonical(self) -> bool:
        """Whether the reader finds every part where it looks (Excel's layout): the workbook part, its
        relationships, styles and shared strings under ``xl/`` as Excel names them, and the sheets."""
        return (self.workbook_part == "xl/workbook.xml" and rels_of(self.workbook_part) in self.entries
                and self.styles_part in (None, "xl/styles.xml") and self.strings_part in (None, "xl/sharedStrings.xml")
                and self.plain_relationships)


def quick_inspect(path: Path, limits: Limits | None = None) -> Inspection:
    """The cheap checks: enough to start a memory- and time-limited reader safely."""
    limits = limits or Limits()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WorkbookRejected("not-a-workbook", f"the file cannot be opened ({exc.strerror})") from exc
    if size == 0:
        raise WorkbookRejected("not-a-workbook", "the file is empty (0 bytes); upload the workbook again")
    if size > limits.max_file_bytes:
        raise WorkbookRejected("too-large", f"the file is {size / 1024**2:.0f} MiB, above the "
                                            f"{limits.max_file_bytes / 1024**2:.0f} MiB limit; split the workbook "
                                            "or raise the limit")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(OLE_MAGIC):
        return _inspect_ole(path)
    if head[:4] in ZIP_MAGICS:
        return _inspect_zip(path, limits)
    if (version := legacy_biff(head)) is not None:
        return Inspection(fmt="xls", biff=version)  # Excel 2.x-4.0: xlrd reads it
    raise WorkbookRejected("not-a-workbook", _describe_non_workbook(path))


def _describe_non_workbook(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(2048)
    start = head.lstrip().lower()
    kind = next((k for hit, k in ((head.startswith(b"%PDF"), "a PDF document"),
                                  (start.startswith((b"<!doctype html", b"<html")), "an HTML page"),
                                  (start.startswith(b"<?xml"), "an XML file"),
                                  (_looks_like_text(head), "a text file (CSV or similar)")) if hit),
                "not a spreadsheet")
    return (f"the file is {kind}, not an Excel or OpenDocument workbook, whatever its extension; open it in Excel or "
            "LibreOffice and save it as .xlsx")


def _looks_like_text(head: bytes) -> bool:
    """Text in UTF-8 or a one-byte code page (a CSV from Excel on Windows): nearly every character
    printable. Random binary without a NUL byte is not (about a quarter of its bytes are controls)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut at the end of the 2 KB is still UTF-8; anything else may be a code page.
        text = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 3 else head.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return bool(text) and printable >= 0.97 * len(text)


def _inspect_ole(path: Path) -> Inspection:
    # A compound file is an .xls, an encrypted OOXML package or another Office file. Its directory
    # entries (128 bytes each, after the 512-byte header) hold UTF-16LE stream names, which compare
    # case-insensitively ([MS-CFB] 2.6.4): an .xls may call its stream WORKBOOK or BOOK.
    with path.open("rb") as fh:
        data = fh.read(64 * 1024**2)
    if "EncryptedPackage".encode("utf-16-le") in data or "EncryptionInfo".encode("utf-16-le") in data:
        raise WorkbookRejected("encrypted", "the workbook is password-protected; save it without a password and "
                                            "upload it again")
    for m in _OLE_WORKBOOK.finditer(data):
        # A name starts a directory entry, and the entry's name length (bytes, NUL included) follows it.
        if m.start() % 128 == 0 and data[m.start() + 64:m.start() + 66] == len(m.group(0)).to_bytes(2, "little"):
            return Inspection(fmt="xls")
    raise WorkbookRejected("not-a-workbook", "the file is an Office document of another kind (e.g. Word or "
                                             "PowerPoint), not a workbook; upload the Excel file instead")


def _inspect_zip(path: Path, limits: Limits) -> Inspection:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WorkbookRejected("corrupt", f"the workbook's zip container is damaged or truncated ({exc}); save it "
                                          "again and re-upload") from exc
    with zf, path.open("rb") as fh:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        check_declared(infos, limits)
        # Some tools write entry names with backslashes or a leading slash; the package means the same.
        entries = {i.filename.replace("\\", "/").lstrip("/"): i for i in infos}
        inspection = Inspection(fmt="?", entries=entries)

        def inflate(name: str) -> None:
            chunks: list[bytes] = []
            inspection.inflated += inflate_entry(fh, entries[name], limits, inspection.inflated, chunks.append, zf)
            inspection.small[name] = b"".join(chunks)

        # The package's own description first: which parts are its workbook and its sheets.
        for asked in ("mimetype", "[Content_Types].xml", "_rels/.rels"):
            name = inspection.find(asked)
            if name is not None and entries[name].file_size <= QUICK_ENTRY_BYTES:
                inflate(name)
        inspection.fmt = _zip_format(inspection)
        for asked in (inspection.workbook_part, rels_of(inspection.workbook_part)):
            name = inspection.find(asked)
            if name is not None and name not in inspection.small and entries[name].file_size <= QUICK_ENTRY_BYTES:
                inflate(name)
        if inspection.fmt in ("xlsx", "xlsm"):
            _xlsx_sheets(inspection)
        elif inspection.fmt == "xlsb":
            targets, listed = _targets(inspection), xlsb.sheets(inspection.small.get(inspection.workbook_part, b""))
            inspection.sheets = [SheetInfo(name, state, *targets.get(rel, ("worksheet", None)))
                                 for name, state, rel in listed]
        sheet_parts = {s.part for s in inspection.sheets or []} | {"content.xml"}
        for name, info in entries.items():
            if name in inspection.small:
                continue
            if name in sheet_parts or info.file_size > QUICK_ENTRY_BYTES or name.startswith("xl/worksheets/"):
                inspection.deferred.append(info)
            else:
                inspection.inflated += inflate_entry(fh, info, limits, inspection.inflated, None, zf)
        if inspection.fmt == "xlsb":
            _xlsb_checks(zf, inspection, limits)
        return inspection


def _zip_format(inspection: Inspection) -> str:
    names = inspection.entries
    if "mimetype" in names:
        mimetype = inspection.small.get("mimetype", b"").strip()
        if mimetype in ODS_MIMETYPES and "content.xml" in names:
            return "ods"
        raise WorkbookRejected("not-a-workbook", f"the file is an OpenDocument file of another kind "
                                                 f"({mimetype.decode(errors='replace')[:100]}), not a spreadsheet")
    if inspection.find("[Content_Types].xml") is not None:
        described = inspection.part("[Content_Types].xml")
        if described is None:
            raise WorkbookRejected("unsafe", "part '[Content_Types].xml' is implausibly large for what it describes")
        content_types = described.decode("utf-8", errors="replace")
        main = _office_document(inspection)
        inspection.workbook_part = (inspection.find(main) or main) if main else inspection.workbook_part
        for ctype, fmt in XLSX_MAIN_TYPES.items():
            if ctype in content_types:
                return fmt
        if "sheet.binary.macroEnabled.main" in content_types or "xl/workbook.bin" in names:
            inspection.workbook_part = "xl/workbook.bin"
            return "xlsb"
        if inspection.workbook_part in names:
            return "xlsx"
        if "word/document.xml" in names or "ppt/presentation.xml" in names:
            raise WorkbookRejected("not-a-workbook", "the file is a Word or PowerPoint document, not a workbook; "
                                                     "upload the Excel file")
        if any(n.startswith("xl/") for n in names):
            raise WorkbookRejected("corrupt", "the workbook package has no workbook part; save it again in Excel "
                                              "and re-upload")
    raise WorkbookRejected("not-a-workbook", "the file is a zip archive but not an Excel or OpenDocument workbook; "
                                             "upload the .xlsx/.ods file itself")


def _office_document(inspection: Inspection) -> str | None:
    """The main part, as the package-level relationships name it."""
    rels = inspection.part("_rels/.rels")
    if rels is None:
        return None
    for rel in parse_xml("_rels/.rels", rels):
        if rel.get("Type", "").endswith(OFFICE_DOCUMENT):
            return resolve("", rel.get("Target", ""))
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


#: The relationship types of the sheets (the last part of the type's URI), and the kind each is.
SHEET_TYPES = {"worksheet": "worksheet", "chartsheet": "chartsheet", "dialogsheet": "dialogsheet",
               "xlMacrosheet": "macrosheet", "xlIntlMacrosheet": "macrosheet"}
#: The sheet kinds the reader (calamine) opens a workbook with; any other makes it refuse the workbook.
READER_KINDS = ("worksheet", "chartsheet", "dialogsheet")


def _targets(inspection: Inspection) -> dict[str, tuple[str, str]]:
    """The workbook part's sheet relationships: id → (sheet kind, zip entry name); the styles and shared
    strings parts, and whether the reader resolves every target as the standard does, noted."""
    part = inspection.workbook_part
    rels = inspection.part(rels_of(part))
    if rels is None:
        return {}
    found = {}
    for rel in parse_xml(rels_of(part), rels):
        kind, target = rel.get("Type", "").rsplit("/", 1)[-1], rel.get("Target", "")
        name = resolve(part, target)
        name = inspection.find(name) or name
        if rel.get("TargetMode") != "External" and not target.startswith("/") and ".." in target.split("/"):
            inspection.plain_relationships = False  # the reader joins a relative target to the folder as it is
        if kind == "styles":
            inspection.styles_part = name
        elif kind == "sharedStrings":
            inspection.strings_part = name
        elif kind in SHEET_TYPES:
            found[rel.get("Id", "")] = (SHEET_TYPES[kind], name)
            inspection.plain_relationships &= SHEET_TYPES[kind] in READER_KINDS
    return found


def _xlsx_sheets(inspection: Inspection) -> None:
    part, small = inspection.workbook_part, inspection.small
    if part not in small:
        if part in inspection.entries:
            raise WorkbookRejected("unsafe", "the workbook part is implausibly large for what it describes")
        raise WorkbookRejected("corrupt", f"the workbook package has no {part}; save it again in Excel and re-upload")
    targets = _targets(inspection)
    sheets: list[SheetInfo] = []
    # The workbook's own elements only: an extension's (x15:workbookPr, in extLst) says other things
    # (calamine 0.36 reads the date system from it, and says 1900: the converter never asks it).
    for el in parse_xml(part, small[part]):
        tag = _local(el.tag)
        if tag == "workbookPr":
            inspection.date1904 = el.get("date1904", "0").lower() in ("1", "true")
        elif tag == "sheets":
            for sheet in el:
                if _local(sheet.tag) == "sheet":
                    kind, target = targets.get(next((v for k, v in sheet.attrib.items() if _local(k) == "id"), ""),
                                               ("worksheet", None))
                    sheets.append(SheetInfo(sheet.get("name", ""), sheet.get("state", "visible"), kind, target))
    inspection.sheets = sheets


def _xlsb_checks(zf: zipfile.ZipFile, inspection: Inspection, limits: Limits) -> None:
    """The date system and each sheet's declared area, from the start of the binary parts (the XML scan
    does not apply to BIFF12)."""
    inspection.date1904 = xlsb.date1904(inspection.small.get("xl/workbook.bin", b""))
    for name, info in inspection.entries.items():
        if not (name.startswith("xl/worksheets/") and name.endswith(".bin")):
            continue
        try:
            with zf.open(info) as part:
                head = part.read(XLSB_HEAD_BYTES)  # bounded: a few records, whatever the ratio
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
            # NotImplementedError: a compression method zipfile lacks (deflate64); RuntimeError: encryption.
            raise WorkbookRejected("corrupt", f"the workbook part {name} cannot be read ({exc})") from exc
        cells = xlsb.sheet_area(head)
        if cells is not None and cells > limits.max_cells:
            raise WorkbookRejected("too-large", f"a sheet ({name}) declares {cells:,} cells, above the "
                                                f"{limits.max_cells:,}-cell limit; delete stray cells far from the "
                                                "data (Ctrl+End shows the last one) and save again")
