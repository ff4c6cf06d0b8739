"""What the guard needs from an .xlsb (BIFF12) package without a reader: the date system and each
sheet's declared area. Records are read from the start of a part only as far as needed.

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


def records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each record in ``data``; stops at the first incomplete record, since
    callers hand over only the beginning of a part."""
    pos = 0
    while pos < len(data):
        try:
            rtype, body = _varint(data, pos, 2)
            size, body = _varint(data, body, 4)
        except RecordError:
            return
        if body + size > len(data):
            return
        yield rtype, data[body:body + size]
        pos = body + size


def date1904(workbook_bin: bytes) -> bool:
    for rtype, payload in records(workbook_bin):
        if rtype == BRT_WB_PROP and len(payload) >= 4:
            return bool(struct.unpack_from("<I", payload)[0] & 1)
        if rtype == BRT_BEGIN_BUNDLE_SHS:
            break
    return False


def sheet_area(sheet_head: bytes) -> int | None:
    """Cells in the sheet's declared used range (what a reader allocates), or None if undeclared."""
    for rtype, payload in records(sheet_head):
        if rtype == BRT_WS_DIM and len(payload) >= 16:
            first_row, last_row, first_col, last_col = struct.unpack_from("<IIII", payload)
            if last_row < first_row or last_col < first_col:
                return 0
            return (last_row - first_row + 1) * (last_col - first_col + 1)
        if rtype == BRT_BEGIN_SHEET_DATA:
            break
    return None
