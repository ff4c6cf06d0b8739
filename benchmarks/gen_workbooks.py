"""Benchmark workbooks, written with xlsxwriter's constant-memory mode.

* ``uniform``: 20 columns, each of one type (ids, zero-padded codes, text, amounts, dates,
  booleans), as a clean export has them;
* ``numeric``: 20 numeric columns (ids, counts, amounts, full-precision ratios, measures);
* ``numeric-text``: the same with one text cell near the end of 6 of the columns (``n/a``, ``TBD``,
  a footnote...), the most common shape of a real export;
* ``id-mixed``: the uniform columns, but the ID column alternates numbers and zero-padded code strings
  (``4567``, ``000123``, half of each, as real exports mix them) and the amount beside it holds one
  late ``n/a``: two columns that become text, one of them from its first rows.
* :func:`make_small`: what ``make bench-many`` drops by the thousand: 2 sheets x 2,000 rows of mixed types
  (ids, zero-padded codes, text, amounts, counts, dates, booleans), one late ``n/a`` among the amounts.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import xlsxwriter

HEADER = [
    "id", "code", "name", "city", "amount", "price", "qty", "ratio", "created", "shipped",
    "active", "flag", "score", "rank", "comment", "category", "weight", "discount", "day", "ref",
]
CITIES = ["Paris", "Lyon", "Berlin", "Madrid", "Roma", "Wien", "Oslo", "Praha"]
CATEGORIES = ["alpha", "beta", "gamma", "delta"]
NUMERIC = [f"m{i:02d}" for i in range(20)]
INTRUDERS = ["n/a", "TBD", "see note 3", "N/A", "pending", "—"]  # in columns 2, 5, 8, 11, 14, 17


def write_uniform(ws, date_fmt, rows: int, seed: int, id_mixed: bool = False) -> None:
    rnd = random.Random(seed)
    mixed = random.Random(seed + 1)  # the id-mixed shape's own draws: the uniform columns stay the same
    ws.write_row(0, 0, HEADER if not id_mixed else ["id", "amount", *HEADER[2:]])
    base = dt.datetime(2020, 1, 1)
    for r in range(1, rows + 1):
        created = base + dt.timedelta(minutes=rnd.randrange(2_000_000))
        code = rnd.randrange(100000)
        if not id_mixed:
            ws.write_number(r, 0, r)
            ws.write_string(r, 1, f"{code:05d}")
        else:  # the ID alternating numbers and zero-padded codes; the amount beside it with one late n/a
            if r % 2:
                ws.write_number(r, 0, mixed.randrange(1, 100_000))
            else:
                ws.write_string(r, 0, f"{mixed.randrange(1, 1_000_000):06d}")
            if r == rows - 7:
                ws.write_string(r, 1, "n/a")
            else:
                ws.write_number(r, 1, round(mixed.uniform(0, 10_000), 2))
        ws.write_string(r, 2, f"customer {rnd.randrange(50000)}")
        ws.write_string(r, 3, rnd.choice(CITIES))
        ws.write_number(r, 4, round(rnd.uniform(0, 10000), 2))
        ws.write_number(r, 5, round(rnd.uniform(1, 500), 2))
        ws.write_number(r, 6, rnd.randrange(1, 100))
        ws.write_number(r, 7, rnd.random())
        ws.write_datetime(r, 8, created, date_fmt)
        ws.write_datetime(r, 9, created + dt.timedelta(days=rnd.randrange(30)), date_fmt)
        ws.write_boolean(r, 10, rnd.random() < 0.5)
        ws.write_boolean(r, 11, rnd.random() < 0.1)
        ws.write_number(r, 12, rnd.randrange(1000))
        ws.write_number(r, 13, rnd.randrange(1, 10))
        ws.write_string(r, 14, "ok" if rnd.random() < 0.7 else "needs review by the team")
        ws.write_string(r, 15, rnd.choice(CATEGORIES))
        ws.write_number(r, 16, round(rnd.uniform(0.1, 80), 3))
        ws.write_number(r, 17, round(rnd.uniform(0, 0.5), 2))
        ws.write_datetime(r, 18, dt.datetime(2024, 1, 1) + dt.timedelta(days=rnd.randrange(365)), date_fmt)
        ws.write_string(r, 19, f"REF-{rnd.randrange(10**8):08d}")


def write_numeric(ws, rows: int, seed: int, text: bool) -> None:
    rnd = random.Random(seed)
    ws.write_row(0, 0, NUMERIC)
    # Near the end, a different row for each column: a total line, a footnote, a pending figure.
    intruders = {2 + 3 * i: (rows - 5 - 7 * i, word) for i, word in enumerate(INTRUDERS)} if text else {}
    for r in range(1, rows + 1):
        for c in range(20):
            if c in intruders and intruders[c][0] == r:
                ws.write_string(r, c, intruders[c][1])
            elif c % 4 == 0:
                ws.write_number(r, c, r * (c + 1))
            elif c % 4 == 1:
                ws.write_number(r, c, round(rnd.uniform(0, 10000), 2))
            elif c % 4 == 2:
                ws.write_number(r, c, rnd.random())
            else:
                ws.write_number(r, c, rnd.randrange(1000))


def make_workbook(path: Path, rows: int, sheets: int = 1, shape: str = "uniform") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    for s in range(sheets):
        ws = wb.add_worksheet(f"Sheet {s + 1}")
        if shape == "uniform":
            write_uniform(ws, date_fmt, rows, seed=s)
        elif shape == "id-mixed":
            write_uniform(ws, date_fmt, rows, seed=s, id_mixed=True)
        else:
            write_numeric(ws, rows, seed=s, text=shape == "numeric-text")
    wb.close()
    return path


SMALL_HEADER = ["id", "code", "customer", "amount", "qty", "date", "active", "note"]


def make_small(path: Path, seed: int, rows: int = 2000) -> Path:
    rnd = random.Random(seed)
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    for s, name in enumerate(("Orders", "Items")):
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, SMALL_HEADER)
        late = rows - 3 - s  # the one n/a, near the end: a sampled schema would miss it
        for r in range(1, rows + 1):
            ws.write_number(r, 0, r)
            ws.write_string(r, 1, f"{rnd.randrange(100000):05d}")
            ws.write_string(r, 2, f"customer {rnd.randrange(5000)}")
            if r == late:
                ws.write_string(r, 3, "n/a")
            else:
                ws.write_number(r, 3, round(rnd.uniform(0, 1000), 2))
            ws.write_number(r, 4, rnd.randrange(1, 50))
            ws.write_datetime(r, 5, dt.datetime(2024, 1, 1) + dt.timedelta(days=rnd.randrange(700)), date_fmt)
            ws.write_boolean(r, 6, rnd.random() < 0.5)
            ws.write_string(r, 7, "ok" if rnd.random() < 0.8 else "check")
    wb.close()
    return path


if __name__ == "__main__":
    import sys

    make_workbook(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1,
                  sys.argv[4] if len(sys.argv) > 4 else "uniform")
