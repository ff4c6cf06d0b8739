"""Checks that run before (or, for the expensive part, alongside) a reader.

The calamine readers allocate the whole used range up front and abort the
process (SIGABRT, uncatchable) when that fails, and they inflate zip entries
without bounds. So everything that could make a reader blow up is checked here,
with the standard library and ``defusedxml`` only: what kind of file it is (from
its bytes, not its name), zip entry sizes and ratios (declared *and* actual),
XML prologs (no DTDs, no entities), and the declared sheet area.

The checks come in two phases so that the reader does not wait for the slow one:

* :func:`quick_inspect` — milliseconds: format, the zip central directory
  (entry count, declared sizes and ratios, encryption), every small part
  inflated with bounds and its prolog checked, the workbook part parsed. After
  it, a reader may start in a child process under an address-space limit and a
  timeout (``convert.py``).
* :func:`deep_check` — inflates the sheets and any large part once, with bounds,
  checking actual sizes, ratios, CRCs and prologs, and scans the sheet XML for
  its real extent and its boolean cells. ``convert.py`` runs it on the second
  core while the child parses, and kills the child if it fails.

The reader's child process stays the last line of defence, because no guard can
foresee every way a file can be hostile.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from contract import STEP_DEFAULTS
from rejection import WorkbookRejected

#: How much of each .xlsb sheet part is read for its dimension record (it comes first).
XLSB_HEAD_BYTES = 64 * 1024
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
# Parts up to this declared size are inflated by the quick phase; larger ones (and the
# sheets, which need the scan) by the deep phase.
QUICK_ENTRY_BYTES = 1024**2


@dataclass(frozen=True)
class Limits:
    """Configurable bounds; the defaults suit a step with a few GiB of memory. Those that are step
    settings take their defaults from the contract."""

    max_file_bytes: int = int(STEP_DEFAULTS["SHEETDROP_MAX_FILE_MB"] * 1024**2)
    max_uncompressed_bytes: int = 4 * 1024**3  # all zip entries together, as inflated
    max_entry_ratio: float = 200.0  # uncompressed/compressed, for entries above ratio_floor_bytes
    ratio_floor_bytes: int = 8 * 1024**2
    max_entries: int = 10_000
    #: The dense area a reader would allocate, per sheet.
    max_cells: int = int(STEP_DEFAULTS["SHEETDROP_MAX_CELLS"])
    #: Address space of each reader process.
    max_memory_bytes: int = int(STEP_DEFAULTS["SHEETDROP_READER_MEMORY_MB"] * 1024**2)
    timeout_seconds: float = float(STEP_DEFAULTS["SHEETDROP_READER_TIMEOUT_S"])




@dataclass
class SheetInfo:
    """What the guard learned about one worksheet of an xlsx/xlsm without parsing it."""

    name: str
    state: str = "visible"  # visible | hidden | veryHidden
    kind: str = "worksheet"  # worksheet | chartsheet | dialogsheet | macrosheet
    part: str | None = None  # zip entry of the sheet
    # How many boolean cells (t="b") the sheet XML holds, from the deep scan; None when
    # unknown (xls, xlsb, ods, or not scanned). The worker compares it with the booleans
    # it read to know whether calamine folded some into numeric or text columns.
    bool_cells: int | None = None


@dataclass
class Inspection:
    fmt: str  # xlsx | xlsm | xlsb | xls | ods
    sheets: list[SheetInfo] | None = None  # known for xlsx/xlsm only
    date1904: bool = False
    deferred: list[str] = field(default_factory=list)  # zip entries left for deep_check
    inflated: int = 0  # bytes inflated so far, against max_uncompressed_bytes


def quick_inspect(path: Path, limits: Limits = Limits()) -> Inspection:
    """The cheap checks: enough to start a (memory- and time-limited) reader safely.

    Format from content; the zip central directory (entry count, declared sizes
    and ratios, encryption flags); every small part inflated with bounds and its
    XML prolog checked; the workbook part parsed (sheets, date system). What is
    left for :func:`deep_check` (the sheets and any large part) is listed in
    ``Inspection.deferred``.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WorkbookRejected("not-a-workbook", f"the file cannot be opened ({exc.strerror})") from exc
    if size == 0:
        raise WorkbookRejected("not-a-workbook", "the file is empty (0 bytes); upload the workbook again")
    if size > limits.max_file_bytes:
        raise WorkbookRejected(
            "too-large",
            f"the file is {size / 1024**2:.0f} MiB, above the {limits.max_file_bytes / 1024**2:.0f} MiB limit; "
            "split the workbook or raise the limit",
        )
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(OLE_MAGIC):
        return _inspect_ole(path)
    if head[:4] in ZIP_MAGICS:
        return _inspect_zip(path, limits)
    raise WorkbookRejected("not-a-workbook", _describe_non_workbook(path))


def inflate_part(
    path: Path, inspection: Inspection, name: str, limits: Limits, sink: Callable[[bytes], None]
) -> None:
    """One deferred part inflated into ``sink`` with the same bounds as :func:`deep_check` (sizes,
    ratios, CRC, prolog); ``deep_check`` then scans it from memory (``preinflated``)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WorkbookRejected("corrupt", f"the workbook's zip container is damaged ({exc})") from exc
    with zf, path.open("rb") as fh:
        inspection.inflated += _inflate_entry(zf, fh, zf.getinfo(name), limits, inspection.inflated, sink)


def deep_check(
    path: Path, inspection: Inspection, limits: Limits = Limits(), preinflated: dict[str, list[bytes]] | None = None
) -> None:
    """The expensive checks: inflate the deferred parts once (bounded) and scan the sheets.

    ``convert.py`` runs this while the reader is already parsing: the reader is
    under an address-space limit and a timeout, so it cannot exhaust the machine
    meanwhile, and nothing it writes is kept unless this check passes.
    """
    if not inspection.deferred:
        return
    by_part = {s.part: s for s in inspection.sheets or [] if s.kind == "worksheet" and s.part}
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WorkbookRejected("corrupt", f"the workbook's zip container is damaged ({exc})") from exc
    with zf, path.open("rb") as fh:
        for name in inspection.deferred:
            sheet = by_part.get(name)
            scan = _SheetScan() if sheet is not None else None
            if preinflated is not None and name in preinflated:
                # Already inflated (and bounded, CRC-checked) by inflate_part: only the scan is left.
                if scan is not None and sheet is not None:
                    for chunk in preinflated[name]:
                        scan.feed(chunk)
                    scan.finish(sheet, limits)
                continue
            inspection.inflated += _inflate_entry(
                zf, fh, zf.getinfo(name), limits, inspection.inflated, scan.feed if scan else None
            )
            if sheet is not None and scan is not None:
                scan.finish(sheet, limits)


def inspect_workbook(path: Path, limits: Limits = Limits()) -> Inspection:
    """Classify the file from its content and check it is safe to hand to a reader (both phases)."""
    inspection = quick_inspect(path, limits)
    deep_check(path, inspection, limits)
    return inspection


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
        raise WorkbookRejected(
            "encrypted", "the workbook is password-protected; save it without a password and upload it again")
    if has("Workbook") or has("Book"):
        return Inspection(fmt="xls")
    raise WorkbookRejected(
        "not-a-workbook",
        "the file is an Office document of another kind (e.g. Word or PowerPoint), not a workbook; "
        "upload the Excel file instead",
    )


def _inspect_zip(path: Path, limits: Limits) -> Inspection:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WorkbookRejected(
            "corrupt", f"the workbook's zip container is damaged or truncated ({exc}); save it again and re-upload"
        ) from exc
    with zf, path.open("rb") as fh:
        infos = zf.infolist()
        names = {i.filename for i in infos}
        _check_declared(infos, limits)
        fmt = _zip_format(zf, names)
        inspection = Inspection(fmt=fmt)
        small: dict[str, bytes] = {}
        sheet_parts = _sheet_parts(zf, names) if fmt in ("xlsx", "xlsm") else set()
        for info in infos:
            if info.is_dir():
                continue
            if info.filename in sheet_parts or info.file_size > QUICK_ENTRY_BYTES:
                inspection.deferred.append(info.filename)
                continue
            keep = info.filename in ("xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/workbook.bin")
            chunks: list[bytes] = []
            inspection.inflated += _inflate_entry(
                zf, fh, info, limits, inspection.inflated, chunks.append if keep else None
            )
            if keep:
                small[info.filename] = b"".join(chunks)
        if fmt in ("xlsx", "xlsm"):
            _xlsx_sheets(small, names, inspection)
        elif fmt == "xlsb":
            _xlsb_checks(zf, infos, small, inspection, limits)
        return inspection


def _xlsb_checks(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], small: dict[str, bytes],
                 inspection: Inspection, limits: Limits) -> None:
    """The date system and each sheet's declared area, read from the start of the binary parts
    (the sheets' XML scan does not apply to BIFF12)."""
    import convert_xlsb

    inspection.date1904 = convert_xlsb.date1904(small.get("xl/workbook.bin", b""))
    for info in infos:
        if not (info.filename.startswith("xl/worksheets/") and info.filename.endswith(".bin")):
            continue
        try:
            with zf.open(info) as part:
                head = part.read(XLSB_HEAD_BYTES)  # bounded: a few records, whatever the ratio
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
            # NotImplementedError: a compression method zipfile lacks (deflate64); RuntimeError: encryption.
            raise WorkbookRejected("corrupt", f"the workbook part {info.filename} cannot be read ({exc})") from exc
        cells = convert_xlsb.sheet_area(head)
        if cells is not None and cells > limits.max_cells:
            raise WorkbookRejected(
                "too-large",
                f"a sheet ({info.filename}) declares {cells:,} cells, above the {limits.max_cells:,}-cell limit; "
                "delete stray cells far from the data (Ctrl+End shows the last one) and save again",
            )


def _sheet_parts(zf: zipfile.ZipFile, names: set[str]) -> set[str]:
    # The worksheet parts, from the content types (cheap: a small part read with bounds).
    # Anything not listed there that is large is deferred anyway by its size.
    text = _safe_xml_text(zf, "[Content_Types].xml", 4 * 1024**2)
    parts = set(re.findall(r'PartName="/?([^"]+)"[^>]*ContentType="[^"]*worksheet\+xml"', text))
    parts |= {n for n in names if n.startswith("xl/worksheets/") and n.endswith(".xml")}
    return parts & names


def _zip_format(zf: zipfile.ZipFile, names: set[str]) -> str:
    if "mimetype" in names:
        try:
            mimetype = zf.read("mimetype").strip()
        except Exception as exc:
            raise WorkbookRejected("corrupt", f"the OpenDocument package is damaged ({exc})") from exc
        if mimetype in ODS_MIMETYPES and "content.xml" in names:
            return "ods"
        raise WorkbookRejected(
            "not-a-workbook",
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
            raise WorkbookRejected(
                "not-a-workbook", "the file is a Word or PowerPoint document, not a workbook; upload the Excel file"
            )
        if "xl/workbook.xml" not in names and any(n.startswith("xl/") for n in names):
            raise WorkbookRejected(
                "corrupt", "the workbook package has no workbook part; save it again in Excel and re-upload")
    raise WorkbookRejected(
        "not-a-workbook",
        "the file is a zip archive but not an Excel or OpenDocument workbook; upload the .xlsx/.ods file itself",
    )


def _check_declared(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_entries:
        raise WorkbookRejected(
            "unsafe", f"the workbook package has {len(infos)} parts, more than a workbook ever needs")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_uncompressed_bytes:
        raise WorkbookRejected(
            "too-large" if declared < 10 * limits.max_uncompressed_bytes else "unsafe",
            f"the workbook declares {declared / 1024**2:.0f} MiB of uncompressed content, above the "
            f"{limits.max_uncompressed_bytes / 1024**2:.0f} MiB limit",
        )
    for info in infos:
        if info.flag_bits & 0x1:
            raise WorkbookRejected(
                "encrypted", "the workbook's parts are encrypted; save it without a password and re-upload")
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_entry_ratio * max(
            info.compress_size, 1
        ):
            raise WorkbookRejected("unsafe", _bomb_reason(info.filename, info.file_size, info.compress_size))


def _bomb_reason(name: str, size: int, compressed: int) -> str:
    return (
        f"part {name!r} expands from {compressed} bytes to {size} bytes "
        f"({size / max(compressed, 1):.0f}:1), the signature of a zip bomb; the file was not opened"
    )




_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader


def _inflate_entry(
    zf: zipfile.ZipFile, fh, info: zipfile.ZipInfo, limits: Limits, total_before: int,
    sink: Callable[[bytes], None] | None,
) -> int:
    """Inflate one entry once, with bounds, feeding ``sink``; returns the bytes produced.

    Headers can lie, so the actual output is what counts: the ratio and total
    limits are applied as bytes come out, the CRC and size are checked at the
    end, and the XML prolog is checked for DTDs. Deflate is inflated from the raw
    stream (not through ``zipfile``, which stops at the declared size and then
    reports a CRC error), so a part that inflates far beyond what its headers
    declare is told apart from plain damage: that is a zip bomb in disguise.
    """
    name = info.filename
    produced = 0
    crc = 0
    head = b""

    def emit(chunk: bytes) -> None:
        nonlocal produced, crc, head
        produced += len(chunk)
        if len(head) < 4096:
            head += chunk[: 4096 - len(head)]
        if produced > limits.ratio_floor_bytes and produced > limits.max_entry_ratio * max(info.compress_size, 1):
            raise WorkbookRejected("unsafe", _bomb_reason(name, produced, info.compress_size))
        if produced > 2 * info.file_size + QUICK_ENTRY_BYTES:
            raise WorkbookRejected(
                "unsafe",
                f"part {name!r} inflates to more than {produced} bytes although its headers declare "
                f"{info.file_size}: a zip bomb that lies about its size; the file was not opened",
            )
        if total_before + produced > limits.max_uncompressed_bytes:
            raise WorkbookRejected(
                "unsafe" if produced > 10 * max(info.file_size, 1) else "too-large",
                f"the workbook inflates to more than {limits.max_uncompressed_bytes / 1024**2:.0f} MiB",
            )
        crc = zlib.crc32(chunk, crc)
        if sink is not None:
            sink(chunk)

    def damaged(detail: object) -> WorkbookRejected:
        return WorkbookRejected(
            "corrupt", f"part {name!r} of the workbook is damaged ({detail}); save it again and re-upload")

    try:
        if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            fh.seek(info.header_offset)
            local = fh.read(_LOCAL_HEADER.size)
            if len(local) != _LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
                raise damaged("bad local header")
            fields = _LOCAL_HEADER.unpack(local)
            fh.seek(info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11])
            left = info.compress_size
            inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
            while left > 0 and not (inflater is not None and inflater.eof):
                raw = fh.read(min(_CHUNK, left))
                if not raw:
                    raise damaged("truncated")
                left -= len(raw)
                if inflater is None:
                    emit(raw)
                    continue
                # max_length bounds each step: 1 MiB of a bomb can inflate to 1 GiB.
                data = raw
                while data and not inflater.eof:
                    out = inflater.decompress(data, _CHUNK)
                    if out:
                        emit(out)
                    data = inflater.unconsumed_tail
            if inflater is not None:
                while not inflater.eof:
                    out = inflater.decompress(b"", _CHUNK)
                    if not out:
                        raise damaged("truncated deflate stream")
                    emit(out)
        else:  # rare methods (bzip2, lzma): zipfile's reader, still bounded chunk by chunk
            with zf.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    emit(chunk)
    except WorkbookRejected:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise damaged(exc) from exc
    except NotImplementedError as exc:
        raise WorkbookRejected("corrupt", f"part {name!r} uses an unsupported zip compression ({exc})") from exc
    if produced != info.file_size or crc != info.CRC:
        raise damaged("CRC or size mismatch: Bad CRC-32")
    if name.endswith((".xml", ".rels", ".vml")):
        _check_prolog(name, head)
    return produced


_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def _check_prolog(name: str, head: bytes) -> None:
    # Workbook XML never needs a DTD; any DOCTYPE/ENTITY is refused outright, so
    # entity expansion cannot happen in readers that do not defend against it.
    text = head
    if text.startswith(b"\xff\xfe") or text.startswith(b"\xfe\xff"):
        text = head.decode("utf-16", errors="ignore").encode()
    if _DTD.search(text):
        raise WorkbookRejected(
            "unsafe",
            f"part {name!r} declares a DTD or XML entities (entity-expansion attack pattern); the file was not opened",
        )


def _safe_xml_text(zf: zipfile.ZipFile, name: str, cap: int) -> str:
    try:
        with zf.open(name) as fh:
            data = fh.read(cap + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise WorkbookRejected("corrupt", f"part {name!r} of the workbook is damaged ({exc})") from exc
    if len(data) > cap:
        raise WorkbookRejected("unsafe", f"part {name!r} is implausibly large for what it describes")
    _check_prolog(name, data[:4096])
    return data.decode("utf-8", errors="replace")


def _parse_xml(name: str, data: bytes):
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    _check_prolog(name, data[:4096])
    try:
        return DET.fromstring(data)
    except DefusedXmlException as exc:
        raise WorkbookRejected("unsafe", f"part {name!r} uses XML entities or DTDs ({exc.__class__.__name__})") from exc
    except Exception as exc:  # ParseError and friends
        raise WorkbookRejected("corrupt", f"part {name!r} of the workbook is not valid XML ({exc})") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xlsx_sheets(small: dict[str, bytes], names: set[str], inspection: Inspection) -> None:
    if "xl/workbook.xml" not in small:
        if "xl/workbook.xml" in names:
            raise WorkbookRejected("unsafe", "the workbook part is implausibly large for what it describes")
        raise WorkbookRejected(
            "corrupt", "the workbook package has no xl/workbook.xml; save it again in Excel and re-upload")
    root = _parse_xml("xl/workbook.xml", small["xl/workbook.xml"])
    targets: dict[str, str] = {}
    if "xl/_rels/workbook.xml.rels" in small:
        for rel in _parse_xml("xl/_rels/workbook.xml.rels", small["xl/_rels/workbook.xml.rels"]):
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
    inspection.sheets = sheets


_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)?(\d+)?(?::([A-Z]+)(\d+))?"')
_ROW = re.compile(rb'<(?:\w+:)?row\b[^>]*?\sr="(\d+)"')
# Literal prefix first: re scans for it quickly, whereas "<c r=" matches every cell.
# Only refs of two or three column letters can widen the area past column Z.
_WIDE_REF = re.compile(rb'r="([A-Z]{2,3})\d')
_BOOL_CELL = b't="b"'
_BOOL_CELL_SQ = b"t='b'"  # hand-written XML may quote with apostrophes


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


class _SheetScan:
    """Streaming scan of one sheet's XML, fed by the single inflate of the part.

    Readers allocate ``rows x columns`` of the used range, so a single cell at
    XFD1048576 is enough to ask for ~17 billion cells; that is refused. The count
    of boolean cells lets the worker skip a second read when every boolean it saw
    is in a boolean column (calamine turns TRUE into 1.0 in numeric columns).
    All passes are C-speed (``bytes.count``, literal-prefixed regexes).
    """

    def __init__(self) -> None:
        self.max_row = 0
        self.max_col = 0
        self.bools = 0
        self.tail = b""
        self.first = True

    def feed(self, chunk: bytes) -> None:
        # The 256-byte overlap makes a ref split across chunks visible whole; the counts
        # only look at the last 4 bytes of the overlap (shorter than the 5-byte pattern),
        # so no boolean is counted twice.
        if self.first:
            self.first = False
            m = _DIMENSION.search(chunk[:8192])
            if m and m.group(3):
                self.max_col, self.max_row = _col_number(m.group(3)), int(m.group(4))
        data = self.tail + chunk
        seam = self.tail[-4:] + chunk
        self.bools += seam.count(_BOOL_CELL)
        if b"='" in seam:
            self.bools += seam.count(_BOOL_CELL_SQ)
        for m in _WIDE_REF.finditer(data):
            self.max_col = max(self.max_col, _col_number(m.group(1)))
        # Rows come in order, so the chunk's last row element holds its largest number;
        # a hostile file with rows out of order is left to the reader's memory limit.
        rows = _ROW.findall(data[-4096:])
        if rows:
            self.max_row = max(self.max_row, int(rows[-1]))
        self.tail = data[-256:]

    def finish(self, sheet: SheetInfo, limits: Limits) -> None:
        sheet.bool_cells = self.bools
        max_row, max_col = self.max_row, self.max_col
        cells = max_row * max(max_col, 1)
        if max_row > EXCEL_MAX_ROWS or max_col > EXCEL_MAX_COLS:
            raise WorkbookRejected(
                "corrupt", f"sheet {sheet.name!r} refers to cells beyond Excel's grid; the file is damaged")
        if cells > limits.max_cells:
            raise WorkbookRejected(
                "too-large",
                f"sheet {sheet.name!r} spans {max_row} rows x {max_col} columns ({cells:,} cells), above the "
                f"{limits.max_cells:,}-cell limit; delete stray cells far from the data (Ctrl+End shows the last "
                "one) and save again",
            )
