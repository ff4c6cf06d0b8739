"""A small .ods writer for tests: content.xml written as text, where the case is about the bytes.

Cells: ``None`` → an empty cell; ``str`` → a string; ``bool`` → a boolean; ``int``/``float`` → a float;
``datetime`` → a date (``office:date-value``); ``time`` → a time of day and ``timedelta`` a duration
(``office:time-value``, ISO 8601: ``PT10H10M10.123456S``); :class:`Raw` → the cell element as given (or
in place of a row, the row element).
``indent`` writes the XML as KOffice did (a newline and spaces between every element); ``parts`` adds
entries (an OpenOffice macro library, settings...) as given.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

NAMESPACES = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
              'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
              'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')
MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"


@dataclass(frozen=True)
class Raw:
    xml: str  # a whole <table:table-cell> (or <table:table-row>) element


def _duration(value: dt.timedelta) -> str:
    micros = abs(value) // dt.timedelta(microseconds=1)
    seconds, fraction = divmod(micros, 1_000_000)
    text = f"PT{seconds // 3600}H{seconds // 60 % 60}M{seconds % 60}" + (f".{fraction:06d}" if fraction else "") + "S"
    return ("-" if value < dt.timedelta(0) else "") + text


def cell(value: object) -> str:
    if isinstance(value, Raw):
        return value.xml
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, bool):
        kind = f'office:value-type="boolean" office:boolean-value="{str(value).lower()}"'
    elif isinstance(value, int | float):
        kind = f'office:value-type="float" office:value="{value!r}"'
    elif isinstance(value, dt.datetime):
        kind = f'office:value-type="date" office:date-value="{value.isoformat()}"'
    elif isinstance(value, dt.time):
        since = dt.datetime.combine(dt.date.min, value) - dt.datetime.min
        kind = f'office:value-type="time" office:time-value="{_duration(since)}"'
    elif isinstance(value, dt.timedelta):
        kind = f'office:value-type="time" office:time-value="{_duration(value)}"'
    else:
        kind = 'office:value-type="string"'
    return f"<table:table-cell {kind}><text:p>{escape(str(value))}</text:p></table:table-cell>"


def write_ods(path: Path, sheets: Mapping[str, Sequence[Sequence[object]]], *, indent: bool = False,
              parts: Mapping[str, bytes] | None = None) -> Path:
    gap = "\n   " if indent else ""
    tables = "".join(
        f'<table:table table:name="{escape(name)}">' + "".join(
            row.xml if isinstance(row, Raw) else
            f"{gap}<table:table-row>" + "".join(f"{gap}{cell(v)}" for v in row) + f"{gap}</table:table-row>"
            for row in rows) + f"{gap}</table:table>" for name, rows in sheets.items())
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {NAMESPACES} office:version="1.2">'
               f"<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body></office:document-content>")
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{MIMETYPE}"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                "</manifest:manifest>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE)
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
        for name, data in (parts or {}).items():
            z.writestr(name, data)
    return path
