"""The corpus's reference reading: every workbook read by a reader that is not built on calamine.

openpyxl reads xlsx/xlsm, xlrd reads xls, pyxlsb reads xlsb cell records (number formats, sheet states
and the date system come from the workbook's own BIFF12 records, which pyxlsb does not expose), odfpy
reads ods. Each sheet becomes a sparse grid of normalized cells ``(kind, value)`` with one vocabulary
for every format:

``number`` (float) · ``text`` · ``bool`` · ``datetime`` (datetime.datetime) · ``time`` (datetime.time)
· ``duration`` (datetime.timedelta) · ``error`` (the error's text, ``#DIV/0!``) — an empty cell is
absent, and so is a text of length 0.

A number is a date when its number format is one (openpyxl's ``is_date_format`` on the lower-cased
code, used for all three Excel formats so they agree): an elapsed format (``[h]:mm``) makes it a
duration, a serial below 1 a time of day, anything else a datetime in the workbook's date system. That
is the rule openpyxl applies to xlsx; xlrd and the xlsb records are brought to it. Cached values are
read for formulas; a formula without one is empty.

Run as a script it prints each sheet's grid: ``python -m tests.corpus.reference WORKBOOK``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Cell = tuple[str, Any]
#: The most cells an ods sheet may expand to (repeated rows times repeated columns holding a value).
MAX_ODS_CELLS = 5_000_000


@dataclass
class Sheet:
    name: str
    state: str = "visible"  # visible, hidden, veryHidden
    kind: str = "worksheet"  # or chartsheet, dialogsheet, xlMacrosheet: not read (xlsx, xlsm; xlrd skips them)
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)  # (row, column), both from 0


@dataclass
class Workbook:
    reader: str
    sheets: list[Sheet]


class Unreadable(Exception):
    """The reference reader could not read the workbook."""


def read_workbook(path: Path) -> Workbook:
    ext = path.suffix.lower()
    try:
        if ext in (".xlsx", ".xlsm"):
            return _read_openpyxl(path)
        if ext == ".xls":
            return _read_xlrd(path)
        if ext == ".xlsb":
            return _read_xlsb(path)
        if ext == ".ods":
            return _read_ods(path)
    except Unreadable:
        raise
    except Exception as exc:  # any reader failure: the file has no reference
        raise Unreadable(f"{type(exc).__name__}: {exc}"[:300]) from exc
    raise Unreadable(f"no reference reader for {ext}")


# -- dates, one rule for the three Excel formats ----------------------------------------------------------

_ELAPSED = re.compile(r"\[(h+|m+|s+)\]", re.IGNORECASE)


def _is_date_format(code: str | None) -> bool:
    """openpyxl's test, on the lower-cased code: Excel reads ``YY`` or ``[HH]`` (LibreOffice writes them)
    as it reads ``yy`` and ``[hh]``; openpyxl's test alone is case-sensitive."""
    from openpyxl.styles.numbers import is_date_format

    return bool(code) and is_date_format(code.lower())


def serial_cell(value: float, code: str | None, date1904: bool) -> Cell:
    """A number with its format code, as openpyxl would return it for xlsx."""
    if not _is_date_format(code):
        return "number", float(value)
    from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

    if _ELAPSED.search(code or ""):
        return "duration", from_excel(value, timedelta=True)
    try:
        got = from_excel(value, CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900)
    except (OverflowError, ValueError):
        return "number", float(value)
    return _python_cell(got)


def _python_cell(value: object) -> Cell | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int | float):
        return "number", float(value)
    if isinstance(value, dt.datetime):
        return "datetime", value
    if isinstance(value, dt.date):
        return "datetime", dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.time):
        return "time", value
    if isinstance(value, dt.timedelta):
        return "duration", value
    text = str(value)
    return ("text", text) if text else None


# -- xlsx / xlsm: openpyxl ---------------------------------------------------------------------------------

_STRICT = {
    b"http://purl.oclc.org/ooxml/spreadsheetml/main": b"http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    b"http://purl.oclc.org/ooxml/officeDocument/relationships":
        b"http://schemas.openxmlformats.org/officeDocument/2006/relationships",
}
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml."
#: Where openpyxl looks for each part a workbook's relationships name, and its content type.
_PLACES = {
    "worksheet": ("xl/worksheets/sheet{n}.xml", _MAIN + "worksheet+xml"),
    "styles": ("xl/styles.xml", _MAIN + "styles+xml"),
    "sharedStrings": ("xl/sharedStrings.xml", _MAIN + "sharedStrings+xml"),
}
#: Elements that point at relationships the rewritten package leaves out (drawings, links, pivot caches).
_LINKED = re.compile(rb"<(?:\w+:)?(hyperlinks|tableParts|pivotCaches|externalReferences)\b.*?</(?:\w+:)?\1>"
                     rb"|<(?:\w+:)?(?:drawing|legacyDrawing|legacyDrawingHF|picture|oleObjects|controls)\b[^>]*/>",
                     re.DOTALL)


def _standard_package(path: Path, styles: bool = True) -> tuple[io.BytesIO, list[tuple[str, str, str]], dict[str, str]]:
    """The workbook's values in the package layout openpyxl expects, whatever layout it came in.

    openpyxl reads styles and shared strings from fixed paths, follows no backslashes in entry names
    and knows no Strict Open XML namespaces; other writers put parts at the zip root, under other
    folders, in other letter cases. So the parts are found as the standard says (``_rels/.rels`` →
    workbook → its relationships, entry names compared case-insensitively) and written where openpyxl
    looks; drawings, links and pivot caches are left out. Cell and workbook XML is copied as it is,
    but for Strict namespaces and empty style attributes (``s=""``, which openpyxl takes for an index).
    """
    from xml.etree import ElementTree

    src = zipfile.ZipFile(path)
    entries = {info.filename.replace("\\", "/").lstrip("/").lower(): info for info in src.infolist()}

    def read(name: str) -> bytes:
        data = src.read(entries[name.lower()])
        for strict, transitional in _STRICT.items():
            data = data.replace(strict, transitional)
        return data

    def rels(part: str) -> list[tuple[str, str, str]]:
        folder, _, base = part.rpartition("/")
        name = f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels"
        if name.lower() not in entries:
            return []
        found = []
        for rel in ElementTree.fromstring(read(name)).iter(_PKG_REL):
            target = rel.get("Target", "").replace("\\", "/")
            target = target.lstrip("/") if target.startswith("/") else "/".join(filter(None, (folder, target)))
            parts: list[str] = []
            for piece in target.split("/"):  # resolve ".." in relative targets
                if piece == "..":
                    parts = parts[:-1]
                elif piece not in ("", "."):
                    parts.append(piece)
            found.append((rel.get("Id", ""), rel.get("Type", "").rsplit("/", 1)[-1], "/".join(parts)))
        return found

    workbook = next(t for _, kind, t in rels("") if kind == "officeDocument")
    charts = {rid: kind for rid, kind, _ in rels(workbook) if kind != "worksheet" and kind.endswith(("sheet", "Sheet"))}
    out = io.BytesIO()
    overrides = {"/xl/workbook.xml": _MAIN + "sheet.main+xml"}
    rel_xml = ['<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">']
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        book = _LINKED.sub(b"", read(workbook))
        for rid in charts:  # openpyxl would read a chart sheet's drawing, which is left out
            book = re.sub(rb'<(?:\w+:)?sheet\b[^>]*"' + re.escape(rid.encode()) + rb'"[^>]*/>', b"", book)
        dst.writestr("xl/workbook.xml", book)
        for n, (rid, kind, target) in enumerate(rels(workbook), start=1):
            if kind not in _PLACES or target.lower() not in entries or (kind == "styles" and not styles):
                continue
            place, content_type = _PLACES[kind]
            place = place.format(n=n)
            data = read(target)
            if kind == "worksheet":
                data = _LINKED.sub(b"", data).replace(b' s=""', b"")
                if not styles:
                    data = re.sub(rb' (?:s|style)="\d+"', b"", data)
            dst.writestr(place, data)
            overrides["/" + place] = content_type
            rel_xml.append(f'<Relationship Id="{rid}" Type="{_REL}{kind}" Target="/{place}"/>')
        dst.writestr("xl/_rels/workbook.xml.rels", "".join(rel_xml) + "</Relationships>")
        dst.writestr("_rels/.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                     f'<Relationship Id="rId1" Type="{_REL}officeDocument" Target="xl/workbook.xml"/></Relationships>')
        types = "".join(f'<Override PartName="{name}" ContentType="{kind}"/>' for name, kind in overrides.items())
        dst.writestr("[Content_Types].xml",
                     '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                     '<Default Extension="rels" '
                     'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                     f'<Default Extension="xml" ContentType="application/xml"/>{types}</Types>')
    out.seek(0)
    return out, _sheet_list(read(workbook)), charts


#: A character escaped in Open XML text (``_x000D_``); openpyxl leaves some of them as they are.
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _read_openpyxl(path: Path) -> Workbook:
    import openpyxl

    reader = "openpyxl"
    # Not read_only: a read-only sheet pads every row out to the declared dimension.
    try:
        package, listed, charts = _standard_package(path)
        book = openpyxl.load_workbook(package, data_only=True, keep_links=False)
    except (IndexError, TypeError, ValueError):  # a stylesheet openpyxl cannot apply
        package, listed, charts = _standard_package(path, styles=False)
        book = openpyxl.load_workbook(package, data_only=True, keep_links=False)
        reader = "openpyxl (without the workbook's styles)"
    worksheets = iter(book.worksheets)
    sheets = []
    for name, state, rid in listed:
        if rid in charts:
            sheets.append(Sheet(name, state, charts[rid]))
            continue
        ws = next(worksheets)
        sheet = Sheet(ws.title, ws.sheet_state)
        for (row, col), cell in ws._cells.items():  # the cells the sheet holds, not its padded grid
            value = cell.value
            if cell.data_type == "e":
                got: Cell | None = ("error", str(value)) if value else None
            elif cell.data_type == "n" and isinstance(value, int | float) and not isinstance(value, bool):
                got = serial_cell(value, cell.number_format, book.epoch.year == 1904)  # formats openpyxl missed
            elif isinstance(value, str):
                got = _python_cell(_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), value))
            else:
                got = _python_cell(value)
            if got is not None:
                sheet.cells[row - 1, col - 1] = got
        sheets.append(sheet)
    return Workbook(reader, sheets)


def _sheet_list(workbook_xml: bytes) -> list[tuple[str, str, str]]:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(workbook_xml)
    found = []
    for el in root.iter():
        if el.tag.rpartition("}")[2] == "sheet":
            rid = next((v for k, v in el.attrib.items() if k.rpartition("}")[2] == "id"), "")
            found.append((el.get("name", ""), el.get("state", "visible"), rid))
    return found


# -- xls: xlrd -----------------------------------------------------------------------------------------------


def _read_xlrd(path: Path) -> Workbook:
    import xlrd

    try:
        book = xlrd.open_workbook(str(path), formatting_info=True, logfile=io.StringIO())
        formats = True
    except (NotImplementedError, xlrd.XLRDError, AssertionError, IndexError, KeyError):
        book = xlrd.open_workbook(str(path), logfile=io.StringIO())
        formats = False
    states = {0: "visible", 1: "hidden", 2: "veryHidden"}
    sheets = []
    for ws in book.sheets():  # worksheets only: xlrd leaves chart and macro sheets out
        sheet = Sheet(ws.name, states.get(ws.visibility, "visible"))
        for r in range(ws.nrows):
            for c in range(ws.row_len(r)):
                kind, value = ws.cell_type(r, c), ws.cell_value(r, c)
                got: Cell | None
                if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    got = None
                elif kind == xlrd.XL_CELL_TEXT:
                    got = ("text", value) if value else None
                elif kind == xlrd.XL_CELL_BOOLEAN:
                    got = "bool", bool(value)
                elif kind == xlrd.XL_CELL_ERROR:
                    got = "error", xlrd.error_text_from_code.get(value, f"#ERR{value}")
                elif formats:
                    xf = book.xf_list[ws.cell_xf_index(r, c)]
                    fmt = book.format_map.get(xf.format_key)
                    got = serial_cell(value, fmt.format_str if fmt else None, bool(book.datemode))
                elif kind == xlrd.XL_CELL_DATE:
                    got = serial_cell(value, "yyyy-mm-dd", bool(book.datemode))
                else:
                    got = "number", float(value)
                if got is not None:
                    sheet.cells[r, c] = got
        sheets.append(sheet)
    return Workbook("xlrd", sheets)


# -- xlsb: pyxlsb for the cells, the BIFF12 records for formats, states and the date system -----------------


def _records(data: bytes):
    """(record type, payload) of a BIFF12 stream: both lengths are 7-bit varints."""
    pos, end = 0, len(data)
    while pos < end:
        rtype = data[pos]
        pos += 1
        if rtype & 0x80:
            rtype = (rtype & 0x7F) | (data[pos] << 7)
            pos += 1
        size = shift = 0
        for _ in range(4):
            byte = data[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        yield rtype, data[pos:pos + size]
        pos += size


def _wide(payload: bytes, at: int) -> tuple[str, int]:
    (count,) = struct.unpack_from("<I", payload, at)
    end = at + 4 + 2 * count
    return payload[at + 4:end].decode("utf-16-le", errors="replace"), end


_BRT_FMT, _BRT_XF, _BRT_BEGIN_CELL_XFS, _BRT_END_CELL_XFS = 44, 47, 617, 618
_BRT_WB_PROP, _BRT_BUNDLE_SH = 153, 156


def _xlsb_styles(zf: zipfile.ZipFile) -> list[str | None]:
    from openpyxl.styles.numbers import BUILTIN_FORMATS

    codes: dict[int, str] = dict(BUILTIN_FORMATS)
    xfs: list[int] = []
    in_cell_xfs = False
    try:
        data = zf.read("xl/styles.bin")
    except KeyError:
        return []
    for rtype, payload in _records(data):
        if rtype == _BRT_FMT:
            (ifmt,) = struct.unpack_from("<H", payload, 0)
            codes[ifmt] = _wide(payload, 2)[0]
        elif rtype == _BRT_BEGIN_CELL_XFS:
            in_cell_xfs = True
        elif rtype == _BRT_END_CELL_XFS:
            in_cell_xfs = False
        elif rtype == _BRT_XF and in_cell_xfs:
            xfs.append(struct.unpack_from("<H", payload, 2)[0])
    return [codes.get(ifmt) for ifmt in xfs]


def _xlsb_book(zf: zipfile.ZipFile) -> tuple[bool, dict[str, str]]:
    date1904, states = False, {}
    names = {0: "visible", 1: "hidden", 2: "veryHidden"}
    for rtype, payload in _records(zf.read("xl/workbook.bin")):
        if rtype == _BRT_WB_PROP:
            date1904 = bool(struct.unpack_from("<I", payload, 0)[0] & 1)
        elif rtype == _BRT_BUNDLE_SH:
            state = struct.unpack_from("<I", payload, 0)[0]
            _rid, at = _wide(payload, 8)
            name, _ = _wide(payload, at)
            states[name] = names.get(state, "visible")
    return date1904, states


_XLSB_ERRORS = {0x00: "#NULL!", 0x07: "#DIV/0!", 0x0F: "#VALUE!", 0x17: "#REF!", 0x1D: "#NAME?", 0x24: "#NUM!",
                0x2A: "#N/A", 0x2B: "#GETTING_DATA"}


def _read_xlsb(path: Path) -> Workbook:
    import pyxlsb
    from pyxlsb import biff12

    zf = zipfile.ZipFile(path)
    codes = _xlsb_styles(zf)
    date1904, states = _xlsb_book(zf)
    sheets = []
    with pyxlsb.open_workbook(str(path)) as book:
        strings = book.stringtable
        if strings is None:  # pyxlsb looks for xl/sharedStrings.bin in that letter case only
            part = next((n for n in zf.namelist() if n.lower() == "xl/sharedstrings.bin"), None)
            if part is not None:
                from pyxlsb.stringtable import StringTable

                strings = StringTable(fp=io.BytesIO(zf.read(part)))
        for index, name in enumerate(book.sheets, start=1):
            sheet = Sheet(name, states.get(name, "visible"))
            with book.get_sheet(index) as ws:
                ws._reader.seek(ws._data_offset)
                row = -1
                for rtype, item in ws._reader:  # the records, for each cell's style and record type
                    if rtype == biff12.ROW:
                        row = item.r
                    elif rtype == biff12.SHEETDATA_END:
                        break
                    elif biff12.BLANK < rtype <= biff12.FORMULA_BOOLERR and item.v is not None:
                        got = _xlsb_cell(rtype, item, strings, codes, date1904)
                        if got is not None:
                            sheet.cells[row, item.c] = got
            sheets.append(sheet)
    return Workbook("pyxlsb", sheets)


def _xlsb_cell(rtype: int, item: Any, strings: Any, codes: list[str | None], date1904: bool) -> Cell | None:
    from pyxlsb import biff12

    if rtype in (biff12.BOOLERR, biff12.FORMULA_BOOLERR):
        code = int(item.v, 16)
        return "error", _XLSB_ERRORS.get(code, f"#ERR{code}")
    if rtype in (biff12.BOOL, biff12.FORMULA_BOOL):
        return "bool", bool(item.v)
    if rtype == biff12.STRING:
        text = strings[item.v] if strings is not None else ""
        return ("text", text) if text else None
    if rtype == biff12.FORMULA_STRING:
        return ("text", item.v) if item.v else None
    code = codes[item.style] if item.style < len(codes) else None
    return serial_cell(item.v, code, date1904)


# -- ods: odfpy ------------------------------------------------------------------------------------------------

_ODS_DURATION = re.compile(r"-?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$")


def _ods_text(node: Any) -> str:
    """A cell's text as ODF defines it: paragraphs joined by line breaks, text:s as spaces."""
    from odf.namespaces import OFFICENS, TEXTNS

    parts: list[str] = []

    def walk(el: Any) -> None:
        for child in el.childNodes:
            if child.nodeType == child.TEXT_NODE:
                parts.append(child.data)
            elif child.qname == (TEXTNS, "s"):
                parts.append(" " * int(child.getAttrNS(TEXTNS, "c") or 1))
            elif child.qname == (TEXTNS, "tab"):
                parts.append("\t")
            elif child.qname == (TEXTNS, "line-break"):
                parts.append("\n")
            elif child.qname == (OFFICENS, "annotation"):
                continue
            else:
                walk(child)

    paragraphs = []
    for child in node.childNodes:
        if getattr(child, "qname", None) in ((TEXTNS, "p"), (TEXTNS, "h")):
            parts = []
            walk(child)
            paragraphs.append("".join(parts))
    return "\n".join(paragraphs)


def _ods_cell(node: Any) -> Cell | None:
    from odf.namespaces import OFFICENS

    calcext = "urn:org:documentfoundation:names:experimental:calc:xmlns:calcext:1.0"
    kind = node.getAttrNS(OFFICENS, "value-type")
    if node.getAttrNS(calcext, "value-type") == "error":
        return "error", _ods_text(node)
    if kind in ("float", "percentage", "currency"):
        return "number", float(node.getAttrNS(OFFICENS, "value"))
    if kind == "boolean":
        return "bool", node.getAttrNS(OFFICENS, "boolean-value").lower() in ("true", "1")
    if kind == "date":
        text = node.getAttrNS(OFFICENS, "date-value")
        return "datetime", dt.datetime.fromisoformat(text[:26])
    if kind == "time":
        match = _ODS_DURATION.match(node.getAttrNS(OFFICENS, "time-value").strip())
        if match is None:
            raise ValueError(f"time value {node.getAttrNS(OFFICENS, 'time-value')!r}")
        days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        span = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if dt.timedelta(0) <= span < dt.timedelta(days=1):
            return "time", (dt.datetime.min + span).time()
        return "duration", span
    if kind == "string" or not kind:
        text = node.getAttrNS(OFFICENS, "string-value") or _ods_text(node)
        return ("text", text) if text else None
    raise ValueError(f"office:value-type {kind!r}")


def _read_ods(path: Path) -> Workbook:
    from odf.namespaces import STYLENS, TABLENS
    from odf.opendocument import load

    doc = load(str(path))
    hidden_styles = set()
    for style in doc.automaticstyles.childNodes:
        if getattr(style, "qname", None) == (STYLENS, "style") and style.getAttrNS(STYLENS, "family") == "table":
            for props in style.childNodes:
                if (getattr(props, "qname", None) == (STYLENS, "table-properties")
                        and props.getAttrNS(TABLENS, "display") == "false"):
                    hidden_styles.add(style.getAttrNS(STYLENS, "name"))
    sheets = []
    # The spreadsheet element as loaded (odfpy's doc.spreadsheet is an empty one when the body holds
    # whitespace before it: KOffice's indented content.xml).
    from odf.namespaces import OFFICENS

    spreadsheet = next((node for node in doc.body.childNodes
                        if getattr(node, "qname", None) == (OFFICENS, "spreadsheet")), doc.spreadsheet)
    for table in spreadsheet.childNodes:
        if getattr(table, "qname", None) != (TABLENS, "table"):
            continue
        state = "hidden" if table.getAttrNS(TABLENS, "style-name") in hidden_styles else "visible"
        sheet = Sheet(table.getAttrNS(TABLENS, "name"), state)
        row = 0
        for row_node in _ods_rows(table):
            repeat = int(row_node.getAttrNS(TABLENS, "number-rows-repeated") or 1)
            cells: list[tuple[int, Cell]] = []
            col = 0
            for cell_node in row_node.childNodes:
                if getattr(cell_node, "qname", None) not in ((TABLENS, "table-cell"), (TABLENS, "covered-table-cell")):
                    continue
                span = int(cell_node.getAttrNS(TABLENS, "number-columns-repeated") or 1)
                got = _ods_cell(cell_node)  # a covered cell keeps its value, as a merged xlsx cell does
                if got is not None:
                    if len(cells) + span > MAX_ODS_CELLS:
                        raise Unreadable(f"sheet {sheet.name!r}: a row expands to {span} cells")
                    cells.extend((col + i, got) for i in range(span))
                col += span
            if cells:
                if len(cells) * repeat + len(sheet.cells) > MAX_ODS_CELLS:
                    raise Unreadable(f"sheet {sheet.name!r} expands to more than {MAX_ODS_CELLS} cells")
                for r in range(row, row + repeat):
                    for c, got in cells:
                        sheet.cells[r, c] = got
            row += repeat
        sheets.append(sheet)
    return Workbook("odfpy", sheets)


def _ods_rows(node: Any):
    """table:table-row elements in order, through row groups and header rows."""
    from odf.namespaces import TABLENS

    for child in node.childNodes:
        if getattr(child, "qname", None) == (TABLENS, "table-row"):
            yield child
        elif getattr(child, "qname", None) in ((TABLENS, "table-row-group"), (TABLENS, "table-header-rows"),
                                                (TABLENS, "table-rows")):
            yield from _ods_rows(child)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        book = read_workbook(Path(arg))
        for sheet in book.sheets:
            print(f"{arg} [{book.reader}] {sheet.name!r} {sheet.state} {sheet.kind}: {len(sheet.cells)} cells")
            for (r, c), cell in sorted(sheet.cells.items())[:40]:
                print(f"  R{r + 1}C{c + 1} {cell[0]} {cell[1]!r}")
