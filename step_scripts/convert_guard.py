"""Checks that run before any reader touches a workbook.

The calamine readers allocate the whole used range up front and abort the
process (SIGABRT, uncatchable) when that fails, and they inflate zip entries
without bounds. So everything that could make a reader blow up is checked here
first, with the standard library and ``defusedxml`` only: what kind of file it
is (from its bytes, not its name), zip entry sizes and ratios (declared *and*
actual), XML prologs (no DTDs, no entities), and the declared sheet area.

The reader still runs in a child process with memory and time limits
(``convert.py``), because no guard can foresee every way a file can be hostile.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

# Rejection codes, the complete documented set.
ENCRYPTED = "encrypted"  # password-protected (OOXML encryption or an .xls FILEPASS)
NOT_A_WORKBOOK = "not-a-workbook"  # CSV, PDF, Word file... whatever the extension says
CORRUPT = "corrupt"  # bad zip, CRC mismatch, truncated, unparsable parts, reader crash
TOO_LARGE = "too-large"  # over the file size, cell count, memory or time limits
UNSAFE = "unsafe"  # zip bomb, XML entity expansion, DTDs
EMPTY = "empty"  # no visible worksheet with data
CODES = (ENCRYPTED, NOT_A_WORKBOOK, CORRUPT, TOO_LARGE, UNSAFE, EMPTY)

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
XLSX_MAIN_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml": "xlsm",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": "xlsx",
    "application/vnd.ms-excel.template.macroEnabled.main+xml": "xlsm",
}
ODS_MIMETYPES = {
    b"application/vnd.oasis.opendocument.spreadsheet",
    b"application/vnd.oasis.opendocument.spreadsheet-template",
}
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLS = 16_384
_CHUNK = 1 << 20


class GuardRejection(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Configurable bounds; the defaults suit a step with a few GiB of memory."""

    max_file_bytes: int = 512 * 1024**2
    max_uncompressed_bytes: int = 4 * 1024**3  # all zip entries together, as inflated
    max_entry_ratio: float = 200.0  # uncompressed/compressed, for entries above ratio_floor_bytes
    ratio_floor_bytes: int = 8 * 1024**2
    max_entries: int = 10_000
    max_cells: int = 60_000_000  # the dense area a reader would allocate, per sheet
    max_memory_bytes: int = 6 * 1024**3  # address space of each reader process
    timeout_seconds: float = 900.0


@dataclass
class SheetInfo:
    """What the guard learned about one worksheet of an xlsx/xlsm without parsing it."""

    name: str
    state: str = "visible"  # visible | hidden | veryHidden
    kind: str = "worksheet"  # worksheet | chartsheet | dialogsheet | macrosheet
    part: str | None = None  # zip entry of the sheet
    # Absolute column indexes holding boolean cells; None (unknown: xls, xlsb, ods) makes the
    # worker check every numeric column the slow way.
    bool_columns: list[int] | None = None


@dataclass
class Inspection:
    fmt: str  # xlsx | xlsm | xlsb | xls | ods
    sheets: list[SheetInfo] | None = None  # known for xlsx/xlsm only
    date1904: bool = False
    notes: list[str] = field(default_factory=list)


def _reject(code: str, reason: str) -> GuardRejection:
    return GuardRejection(code, reason)


def inspect_workbook(path: Path, limits: Limits = Limits()) -> Inspection:
    """Classify the file from its content and check it is safe to hand to a reader."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _reject(NOT_A_WORKBOOK, f"the file cannot be opened ({exc.strerror})") from exc
    if size == 0:
        raise _reject(NOT_A_WORKBOOK, "the file is empty (0 bytes); upload the workbook again")
    if size > limits.max_file_bytes:
        raise _reject(
            TOO_LARGE,
            f"the file is {size / 1024**2:.0f} MiB, above the {limits.max_file_bytes / 1024**2:.0f} MiB limit; "
            "split the workbook or raise the limit",
        )
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(OLE_MAGIC):
        return _inspect_ole(path)
    if head[:4] in ZIP_MAGICS:
        return _inspect_zip(path, limits)
    raise _reject(NOT_A_WORKBOOK, _describe_non_workbook(path))


def _describe_non_workbook(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(2048)
    if head.startswith(b"%PDF"):
        kind = "a PDF document"
    elif head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        kind = "an HTML page"
    elif head.lstrip().startswith(b"<?xml"):
        kind = "an XML file"
    elif b"\x00" not in head:
        kind = "a text file (CSV or similar)"
    else:
        kind = "not a spreadsheet"
    return (
        f"the file is {kind}, not an Excel or OpenDocument workbook, whatever its extension; "
        "open it in Excel or LibreOffice and save it as .xlsx"
    )


def _inspect_ole(path: Path) -> Inspection:
    # A compound file is an .xls, an encrypted OOXML package, or some other Office file.
    # Directory entries hold UTF-16LE stream names; a bounded read of the file finds them.
    with path.open("rb") as fh:
        data = fh.read(64 * 1024**2)
    def has(name: str) -> bool:
        return name.encode("utf-16-le") in data
    if has("EncryptedPackage") or has("EncryptionInfo"):
        raise _reject(ENCRYPTED, "the workbook is password-protected; save it without a password and upload it again")
    if has("Workbook") or has("Book"):
        return Inspection(fmt="xls")
    raise _reject(
        NOT_A_WORKBOOK,
        "the file is an Office document of another kind (e.g. Word or PowerPoint), not a workbook; "
        "upload the Excel file instead",
    )


def _inspect_zip(path: Path, limits: Limits) -> Inspection:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _reject(
            CORRUPT, f"the workbook's zip container is damaged or truncated ({exc}); save it again and re-upload"
        ) from exc
    with zf:
        infos = zf.infolist()
        names = {i.filename for i in infos}
        fmt = _zip_format(zf, names)
        _check_declared(infos, limits)
        _check_entries(zf, infos, limits, fmt)
        inspection = Inspection(fmt=fmt)
        if fmt in ("xlsx", "xlsm"):
            _xlsx_sheets(zf, names, inspection, limits)
        return inspection


def _zip_format(zf: zipfile.ZipFile, names: set[str]) -> str:
    if "mimetype" in names:
        try:
            mimetype = zf.read("mimetype").strip()
        except Exception as exc:
            raise _reject(CORRUPT, f"the OpenDocument package is damaged ({exc})") from exc
        if mimetype in ODS_MIMETYPES and "content.xml" in names:
            return "ods"
        raise _reject(
            NOT_A_WORKBOOK,
            f"the file is an OpenDocument file of another kind ({mimetype.decode(errors='replace')}), "
            "not a spreadsheet",
        )
    if "[Content_Types].xml" in names:
        content_types = _safe_xml_text(zf, "[Content_Types].xml", 4 * 1024**2)
        for ctype, fmt in XLSX_MAIN_TYPES.items():
            if ctype in content_types:
                return fmt
        if "application/vnd.ms-excel.sheet.binary.macroEnabled.main" in content_types or "xl/workbook.bin" in names:
            return "xlsb"
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "word/document.xml" in names or "ppt/presentation.xml" in names:
            raise _reject(
                NOT_A_WORKBOOK, "the file is a Word or PowerPoint document, not a workbook; upload the Excel file"
            )
        if "xl/workbook.xml" not in names and any(n.startswith("xl/") for n in names):
            raise _reject(CORRUPT, "the workbook package has no workbook part; save it again in Excel and re-upload")
    raise _reject(
        NOT_A_WORKBOOK,
        "the file is a zip archive but not an Excel or OpenDocument workbook; upload the .xlsx/.ods file itself",
    )


def _check_declared(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_entries:
        raise _reject(UNSAFE, f"the workbook package has {len(infos)} parts, more than a workbook ever needs")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_uncompressed_bytes:
        raise _reject(
            TOO_LARGE if declared < 10 * limits.max_uncompressed_bytes else UNSAFE,
            f"the workbook declares {declared / 1024**2:.0f} MiB of uncompressed content, above the "
            f"{limits.max_uncompressed_bytes / 1024**2:.0f} MiB limit",
        )
    for info in infos:
        if info.flag_bits & 0x1:
            raise _reject(ENCRYPTED, "the workbook's parts are encrypted; save it without a password and re-upload")
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_entry_ratio * max(
            info.compress_size, 1
        ):
            raise _reject(UNSAFE, _bomb_reason(info.filename, info.file_size, info.compress_size))


def _bomb_reason(name: str, size: int, compressed: int) -> str:
    return (
        f"part {name!r} expands from {compressed} bytes to {size} bytes "
        f"({size / max(compressed, 1):.0f}:1), the signature of a zip bomb; the file was not opened"
    )


def _check_entries(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], limits: Limits, fmt: str) -> None:
    """Inflate every entry with bounds: headers can lie, so actual sizes are what count.

    Reading through ``zipfile`` also checks each CRC, which catches truncated and
    damaged files before a reader does.
    """
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        produced = 0
        try:
            with zf.open(info) as stream:
                first = b""
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    if not first:
                        first = chunk[:4096]
                    produced += len(chunk)
                    total += len(chunk)
                    if produced > limits.ratio_floor_bytes and produced > limits.max_entry_ratio * max(
                        info.compress_size, 1
                    ):
                        raise _reject(UNSAFE, _bomb_reason(info.filename, produced, info.compress_size))
                    if total > limits.max_uncompressed_bytes:
                        raise _reject(
                            UNSAFE if produced > 10 * max(info.file_size, 1) else TOO_LARGE,
                            f"the workbook inflates to more than {limits.max_uncompressed_bytes / 1024**2:.0f} MiB",
                        )
        except GuardRejection:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise _reject(
                CORRUPT, f"part {info.filename!r} of the workbook is damaged ({exc}); save it again and re-upload"
            ) from exc
        except NotImplementedError as exc:
            raise _reject(CORRUPT, f"part {info.filename!r} uses an unsupported zip compression ({exc})") from exc
        if info.filename.endswith((".xml", ".rels", ".vml")) or info.filename == "[Content_Types].xml":
            _check_prolog(info.filename, first)


_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def _check_prolog(name: str, head: bytes) -> None:
    # Workbook XML never needs a DTD; any DOCTYPE/ENTITY is refused outright, so
    # entity expansion cannot happen in readers that do not defend against it.
    text = head
    if text.startswith(b"\xff\xfe") or text.startswith(b"\xfe\xff"):
        text = head.decode("utf-16", errors="ignore").encode()
    if _DTD.search(text):
        raise _reject(
            UNSAFE,
            f"part {name!r} declares a DTD or XML entities (entity-expansion attack pattern); the file was not opened",
        )


def _safe_xml_text(zf: zipfile.ZipFile, name: str, cap: int) -> str:
    try:
        with zf.open(name) as fh:
            data = fh.read(cap + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise _reject(CORRUPT, f"part {name!r} of the workbook is damaged ({exc})") from exc
    if len(data) > cap:
        raise _reject(UNSAFE, f"part {name!r} is implausibly large for what it describes")
    _check_prolog(name, data[:4096])
    return data.decode("utf-8", errors="replace")


def _parse_xml(zf: zipfile.ZipFile, name: str, cap: int = 16 * 1024**2):
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    text = _safe_xml_text(zf, name, cap)
    try:
        return DET.fromstring(text)
    except DefusedXmlException as exc:
        raise _reject(UNSAFE, f"part {name!r} uses XML entities or DTDs ({exc.__class__.__name__})") from exc
    except Exception as exc:  # ParseError and friends
        raise _reject(CORRUPT, f"part {name!r} of the workbook is not valid XML ({exc})") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xlsx_sheets(zf: zipfile.ZipFile, names: set[str], inspection: Inspection, limits: Limits) -> None:
    if "xl/workbook.xml" not in names:
        raise _reject(CORRUPT, "the workbook package has no xl/workbook.xml; save it again in Excel and re-upload")
    root = _parse_xml(zf, "xl/workbook.xml")
    targets: dict[str, str] = {}
    if "xl/_rels/workbook.xml.rels" in names:
        for rel in _parse_xml(zf, "xl/_rels/workbook.xml.rels"):
            target = rel.get("Target", "")
            target = target.lstrip("/") if target.startswith("/") else "xl/" + target
            targets[rel.get("Id", "")] = re.sub(r"[^/]+/\.\./", "", target)
    sheets: list[SheetInfo] = []
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "workbookPr":
            inspection.date1904 = el.get("date1904", "0").lower() in ("1", "true")
        elif tag == "sheet":
            rid = next((v for k, v in el.attrib.items() if _local(k) == "id"), "")
            part = targets.get(rid)
            kind = "worksheet"
            if part and "/chartsheets/" in part:
                kind = "chartsheet"
            elif part and "/dialogsheets/" in part:
                kind = "dialogsheet"
            elif part and "/macrosheets/" in part:
                kind = "macrosheet"
            sheets.append(SheetInfo(name=el.get("name", ""), state=el.get("state", "visible"), kind=kind, part=part))
    for sheet in sheets:
        if sheet.kind == "worksheet" and sheet.part in names:
            _scan_sheet(zf, sheet, limits)
    inspection.sheets = sheets


_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)?(\d+)?(?::([A-Z]+)(\d+))?"')
_ROW = re.compile(rb'<(?:\w+:)?row\b[^>]*?\sr="(\d+)"')
# Literal prefix first: re scans for it quickly, whereas "<c r=" matches every cell.
_WIDE_REF = re.compile(rb'r="([A-Z]{2,3})\d')
_BOOL = re.compile(rb't="b"')
_CELL_REF = re.compile(rb'<(?:\w+:)?c\s[^>]*?r="([A-Z]+)\d+"')


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def _scan_sheet(zf: zipfile.ZipFile, sheet: SheetInfo, limits: Limits) -> None:
    """One streaming pass over a sheet's XML: the area it spans, and where its booleans are.

    Readers allocate ``rows x columns`` of the used range, so a single cell at
    XFD1048576 is enough to ask for ~17 billion cells; that is refused here.
    The columns holding boolean cells let the worker check only those numeric
    columns for booleans (calamine silently turns TRUE into 1.0 there).
    """
    assert sheet.part is not None
    max_row = max_col = 0
    bool_cols: set[int] = set()
    tail = b""
    with zf.open(sheet.part) as stream:
        first = True
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            # Overlap with the previous chunk so a cell split across chunks is seen whole.
            data = tail + chunk
            if first:
                first = False
                m = _DIMENSION.search(data[:8192])
                if m and m.group(3):
                    max_col, max_row = _col_number(m.group(3)), int(m.group(4))
            for m in _BOOL.finditer(data, len(tail) // 2 if tail else 0):
                start = data.rfind(b"<", 0, m.start())
                ref = _CELL_REF.match(data, start) if start >= 0 else None
                if ref:
                    bool_cols.add(_col_number(ref.group(1)) - 1)
            for m in _WIDE_REF.finditer(data):
                max_col = max(max_col, _col_number(m.group(1)))
            rows = _ROW.findall(data[-4096:])
            if rows:
                max_row = max(max_row, int(rows[-1]))
            tail = data[-256:]
    sheet.bool_columns = sorted(bool_cols)
    cells = max_row * max(max_col, 1)
    if max_row > EXCEL_MAX_ROWS or max_col > EXCEL_MAX_COLS:
        raise _reject(CORRUPT, f"sheet {sheet.name!r} refers to cells beyond Excel's grid; the file is damaged")
    if cells > limits.max_cells:
        raise _reject(
            TOO_LARGE,
            f"sheet {sheet.name!r} spans {max_row} rows x {max_col} columns ({cells:,} cells), above the "
            f"{limits.max_cells:,}-cell limit; delete stray cells far from the data (Ctrl+End shows the last one) "
            "and save again",
        )
