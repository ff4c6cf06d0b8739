"""Writing one cell of any kind with xlsxwriter, formatted as Excel would show that kind."""

from __future__ import annotations

import datetime as dt


def write(ws, wb, r: int, c: int, value: object) -> None:
    if isinstance(value, dt.timedelta):
        ws.write_number(r, c, value.total_seconds() / 86400, wb.add_format({"num_format": "[h]:mm:ss"}))
    elif isinstance(value, dt.time):
        ws.write_datetime(r, c, value, wb.add_format({"num_format": "hh:mm:ss"}))
    elif isinstance(value, dt.datetime):
        ws.write_datetime(r, c, value, wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}))
    elif isinstance(value, str):
        ws.write_string(r, c, value)
    else:
        ws.write(r, c, value)
