"""A small xlsx writer for tests: the package's parts written as text, where the case is about the bytes.

xlsxwriter and openpyxl write packages the way Excel does; the cases here are what other tools write:
parts at the zip root or in a folder of another name (found through ``_rels/.rels``), entry names with
backslashes and in another letter case, indented XML, a ``<dimension>`` claiming the whole grid, rows
padded with thousands of styled empty cells, ISO 8601 date cells (``t="d"``), whole numbers written with
all their digits, the 1904 date system beside an extension's ``workbookPr``, chart, macro and dialog
sheets. A sheet is its ``<sheetData>`` content, written by the caller or from rows of values by
:func:`row`; the styles hold one cell format per number format code of ``formats`` (``s="1"`` is the
first).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "application/vnd.openxmlformats-officedocument.spreadsheetml."
#: Sheet kinds: (folder, relationship type, content type, root element).
KINDS = {
    "worksheet": ("worksheets", f"{REL}/worksheet", CT + "worksheet+xml", "worksheet"),
    "chartsheet": ("chartsheets", f"{REL}/chartsheet", CT + "chartsheet+xml", "chartsheet"),
    "macrosheet": ("macrosheets", "http://schemas.microsoft.com/office/2006/relationships/xlMacrosheet",
                   "application/vnd.ms-excel.macrosheet+xml", "xm:macrosheet"),
    "dialogsheet": ("dialogsheets", f"{REL}/dialogsheet", CT + "dialogsheet+xml", "dialogsheet"),
}


def column(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def cell(ref: str, value: object, style: int | None = None) -> str:
    """One cell: a number (``<v>`` as ``repr`` writes it, or as given when it is a :class:`Raw`), a string
    (inline), a bool, or :class:`Raw` XML of the cell's content with its type."""
    s = f' s="{style}"' if style is not None else ""
    if isinstance(value, Raw):
        return f'<c r="{ref}"{s}{value.type}>{value.content}</c>'
    if isinstance(value, bool):
        return f'<c r="{ref}"{s} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"{s}><v>{value!r}</v></c>'
    text = str(value)
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{escape(text)}</t></is></c>'


@dataclass(frozen=True)
class Raw:
    """A cell's content as written: ``Raw("<v>10:10:10</v>", ' t="d"')``."""

    content: str
    type: str = ""


def row(r: int, values: Sequence[object], styles: Mapping[int, int] | None = None, first: int = 0) -> str:
    """Row ``r`` (from 1) holding ``values`` from column ``first`` (None: no cell); ``styles`` by position."""
    cells = "".join(cell(f"{column(first + j)}{r}", v, (styles or {}).get(j)) for j, v in enumerate(values)
                    if v is not None)
    return f'<row r="{r}">{cells}</row>'


def rows(values: Iterable[Sequence[object]], styles: Mapping[int, int] | None = None) -> str:
    return "".join(row(r, vs, styles) for r, vs in enumerate(values, start=1))


@dataclass
class Sheet:
    name: str
    data: str = ""  # the content of <sheetData>
    kind: str = "worksheet"
    state: str = "visible"
    dimension: str | None = None  # <dimension ref=…>
    before: str = ""  # XML between the root's start and <sheetData> (after the dimension)


@dataclass
class Package:
    """Where the parts go: ``folder`` holds the workbook and its parts (``""``: the zip root), entries
    written with ``backslashes``; ``lower`` writes every entry name in lower case (the relationships
    keep their letter case); ``content_types`` is the name of ``[Content_Types].xml``."""

    folder: str = "xl/"
    backslashes: bool = False
    lower: bool = False
    content_types: str = "[Content_Types].xml"
    extra: dict[str, bytes] = field(default_factory=dict)  # more entries, as named


def styles_xml(formats: Sequence[str]) -> str:
    """One cell format per code, after the default (``s="0"``, General): ``s="1"`` is the first code."""
    fmts = "".join(f'<numFmt numFmtId="{164 + i}" formatCode={quoteattr(code)}/>' for i, code in enumerate(formats))
    xfs = '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>' + "".join(
        f'<xf numFmtId="{164 + i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        for i in range(len(formats)))
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><styleSheet xmlns="{MAIN}">'
            f'<numFmts count="{len(formats)}">{fmts}</numFmts>'
            '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
            '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f'<cellXfs count="{len(formats) + 1}">{xfs}</cellXfs></styleSheet>')


def _sheet_xml(sheet: Sheet) -> str:
    root = KINDS[sheet.kind][3]
    ns = f'xmlns="{MAIN}" xmlns:r="{REL}"'
    if sheet.kind == "macrosheet":
        ns = f'xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main" xmlns="{MAIN}" xmlns:r="{REL}"'
    dimension = f'<dimension ref="{sheet.dimension}"/>' if sheet.dimension else ""
    body = "" if sheet.kind == "chartsheet" else f"<sheetData>{sheet.data}</sheetData>"
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><{root} {ns}>{dimension}{sheet.before}'
            f"{body}</{root}>")


def write_xlsx(path: Path, sheets: Sequence[Sheet], *, formats: Sequence[str] = (), workbook_pr: str = "",
               workbook_ext: str = "", package: Package | None = None, shared: Sequence[str] = ()) -> Path:
    """The package of ``sheets`` (in order), styles with ``formats``, ``<workbookPr {workbook_pr}/>`` and
    ``workbook_ext`` (an extLst's content) in the workbook part, and a shared strings part of ``shared``
    (cells refer to them as ``Raw("<v>0</v>", ' t="s"')``)."""
    package = package or Package()
    folder = package.folder
    parts: dict[str, str] = {}
    overrides = [(f"/{folder}workbook.xml", CT + "sheet.main+xml"), (f"/{folder}styles.xml", CT + "styles+xml")]
    rels, listed = [], []
    counts: dict[str, int] = {}
    for i, sheet in enumerate(sheets, start=1):
        sub, rel_type, content_type, _ = KINDS[sheet.kind]
        counts[sheet.kind] = counts.get(sheet.kind, 0) + 1
        target = f"{sub}/sheet{counts[sheet.kind]}.xml"
        parts[folder + target] = _sheet_xml(sheet)
        overrides.append((f"/{folder}{target}", content_type))
        rels.append(f'<Relationship Id="rId{i}" Type="{rel_type}" Target="{target}"/>')
        state = f' state="{sheet.state}"' if sheet.state != "visible" else ""
        listed.append(f'<sheet name={quoteattr(sheet.name)} sheetId="{i}"{state} r:id="rId{i}"/>')
    rels.append(f'<Relationship Id="rId{len(sheets) + 1}" Type="{REL}/styles" Target="styles.xml"/>')
    if shared:
        rels.append(f'<Relationship Id="rId{len(sheets) + 2}" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>')
        items = "".join(f"<si><t>{escape(text)}</t></si>" for text in shared)
        parts[folder + "sharedStrings.xml"] = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                                               f'<sst xmlns="{MAIN}" count="{len(shared)}">{items}</sst>')
        overrides.append((f"/{folder}sharedStrings.xml", CT + "sharedStrings+xml"))
    ext = f"<extLst>{workbook_ext}</extLst>" if workbook_ext else ""
    parts[folder + "workbook.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{MAIN}" xmlns:r="{REL}">'
        f'<workbookPr {workbook_pr}/><sheets>{"".join(listed)}</sheets>{ext}</workbook>')
    parts[folder + "_rels/workbook.xml.rels"] = f'<Relationships xmlns="{PKG_REL}">{"".join(rels)}</Relationships>'
    parts[folder + "styles.xml"] = styles_xml(formats)
    parts["_rels/.rels"] = (f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" Type="{REL}/officeDocument" '
                            f'Target="{folder}workbook.xml"/></Relationships>')
    types = "".join(f'<Override PartName="{name}" ContentType="{kind}"/>' for name, kind in overrides)
    parts[package.content_types] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Default Extension="xml" ContentType="application/xml"/>{types}</Types>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, text in parts.items():
            entry = name.lower() if package.lower else name
            out.writestr(entry.replace("/", "\\") if package.backslashes else entry, text.encode())
        for name, data in package.extra.items():
            out.writestr(name, data)
    return path
