"""What the converter needs from an .xlsb (BIFF12) package without a reader: the date system, the sheets
(name, visibility, relationship) and each sheet's declared area, and a sheet's first rows as a part of
their own. Records are read from the start of a part only as far as needed.

Record layout ([MS-XLSB] 2.1.4): a record type of 1-2 bytes and a size of 1-4 bytes, each byte
carrying 7 bits with the high bit meaning "more follows", then the payload.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

BRT_WB_PROP = 153  # workbook properties: flags, bit 0 = 1904 date system
BRT_WS_DIM = 148  # sheet dimension: first row, last row, first column, last column
BRT_BEGIN_SHEET_DATA = 145  # the cells start: a dimension comes before it or not at all
BRT_BEGIN_BUNDLE_SHS = 143  # the sheet list starts: workbook properties come before it
BRT_BUNDLE_SH = 156  # one sheet: visibility, tab id, relationship id, name
BRT_END_BUNDLE_SHS = 144
BRT_ROW_HDR = 0  # a row starts
BRT_END_SHEET_DATA = 146
BRT_END_SHEET = 130
_STATES = {0: "visible", 1: "hidden", 2: "veryHidden"}


class RecordError(ValueError):
    pass


def _varint(data: bytes, pos: int, max_bytes: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(max_bytes):
        if pos + i >= len(data):
            raise RecordError("truncated record header")
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + i + 1
    raise RecordError("record header too long")


def records(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    """(type, payload, end offset) of each record in ``data``; stops at the first incomplete record,
    since callers hand over only the beginning of a part."""
    pos = 0
    while pos < len(data):
        try:
            rtype, body = _varint(data, pos, 2)
            size, body = _varint(data, body, 4)
        except RecordError:
            return
        if body + size > len(data):
            return
        pos = body + size
        yield rtype, data[body:pos], pos


def date1904(workbook_bin: bytes) -> bool:
    for rtype, payload, _ in records(workbook_bin):
        if rtype == BRT_WB_PROP and len(payload) >= 4:
            return bool(struct.unpack_from("<I", payload)[0] & 1)
        if rtype == BRT_BEGIN_BUNDLE_SHS:
            break
    return False


def sheet_area(sheet_head: bytes) -> int | None:
    """Cells in the sheet's declared used range (what a reader allocates), or None if undeclared."""
    for rtype, payload, _ in records(sheet_head):
        if rtype == BRT_WS_DIM and len(payload) >= 16:
            first_row, last_row, first_col, last_col = struct.unpack_from("<IIII", payload)
            if last_row < first_row or last_col < first_col:
                return 0
            return (last_row - first_row + 1) * (last_col - first_col + 1)
        if rtype == BRT_BEGIN_SHEET_DATA:
            break
    return None


def _wide(payload: bytes, pos: int) -> tuple[str, int]:
    """An XLWideString: a character count, then UTF-16LE."""
    (count,) = struct.unpack_from("<I", payload, pos)
    if count == 0xFFFFFFFF:  # XLNullableWideString's null
        return "", pos + 4
    end = pos + 4 + 2 * count
    if end > len(payload):
        raise RecordError("truncated string")
    return payload[pos + 4:end].decode("utf-16-le", errors="replace"), end


def sheets(workbook_bin: bytes) -> list[tuple[str, str, str]]:
    """(name, visibility, relationship id) of each sheet, in workbook order."""
    found = []
    for rtype, payload, _ in records(workbook_bin):
        if rtype == BRT_BUNDLE_SH and len(payload) >= 8:
            try:
                rel, pos = _wide(payload, 8)
                name, _ = _wide(payload, pos)
            except (RecordError, struct.error):
                continue
            found.append((name, _STATES.get(struct.unpack_from("<I", payload)[0] & 3, "hidden"), rel))
        elif rtype == BRT_END_BUNDLE_SHS:
            break
    return found


def sheet_head(data: bytes, rows: int) -> bytes | None:
    """The records of a sheet part up to its ``rows``-th row, then closed; None without a whole row."""
    seen, end = 0, None
    for rtype, _, pos in records(data):
        if rtype == BRT_END_SHEET_DATA or (rtype == BRT_ROW_HDR and seen == rows):
            break
        seen += rtype == BRT_ROW_HDR
        if seen:
            end = pos
    if end is None:
        return None
    # BrtEndSheetData, BrtEndSheet: type as 7-bit groups with a continuation bit, size 0.
    return data[:end] + bytes([0x92, 0x01, 0x00, 0x82, 0x01, 0x00])
