"""Workbook → parquet conversion: pure logic, no AzureML.

Self-contained: this folder is uploaded to AzureML as the step's snapshot, so
nothing here imports from ``sheetdrop`` or ``pipeline``.

Run as a script (``python convert.py INPUT OUTDIR``) it converts without any
storage: exit 0 on success, 2 with one line ``error: <code>: <reason>`` on a
rejected workbook.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

CONVERTER_VERSION = "0.1.0"


class WorkbookRejected(Exception):
    """A workbook that cannot be converted; ``code`` is one of the documented codes."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass
class SheetOutput:
    sheet: str
    slug: str
    path: Path
    rows: int
    columns: int
    column_types: dict[str, str] = field(default_factory=dict)
    nulls: int = 0
    errors: int = 0
    bytes: int = 0


def slugify(text: str, fallback: str = "sheet") -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug or fallback


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _header_names(raw: list[object]) -> list[str]:
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, value in enumerate(raw):
        name = str(value).strip() if value not in (None, "") else f"column_{_column_letter(i)}"
        base, n = name, seen.get(name, 0)
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen[base] = n
        seen[name] = 0
        names.append(name)
    return names


def _format_number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _column(values: list[object]):
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None and v != ""}
    cleaned = [None if v == "" else v for v in values]
    if not kinds:
        return pa.array(cleaned, type=pa.string()), "string"
    if kinds == {bool}:
        return pa.array(cleaned, type=pa.bool_()), "bool"
    if kinds <= {int, float} and bool not in kinds:
        if all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in cleaned if v is not None):
            return pa.array([None if v is None else int(v) for v in cleaned], type=pa.int64()), "int64"
        return pa.array([None if v is None else float(v) for v in cleaned], type=pa.float64()), "float64"
    if kinds <= {dt.datetime, dt.date}:
        return pa.array(
            [None if v is None else (v if isinstance(v, dt.datetime) else dt.datetime(v.year, v.month, v.day)) for v in cleaned],
            type=pa.timestamp("us"),
        ), "timestamp"
    as_text = [
        None if v is None else (_format_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v))
        for v in cleaned
    ]
    return pa.array(as_text, type=pa.string()), "string"


def convert_workbook(src: Path, outdir: Path, *, source: str | None = None) -> list[SheetOutput]:
    """Write one ``<sheet-slug>.parquet`` per non-empty sheet of ``src`` into ``outdir``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import python_calamine

    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(src))
    except python_calamine.PasswordError as exc:
        raise WorkbookRejected("encrypted", "the workbook is password-protected; save it without a password and upload it again") from exc
    except Exception as exc:  # calamine raises several error types for unreadable files
        raise WorkbookRejected("not-a-workbook", f"the file could not be read as a workbook ({exc.__class__.__name__})") from exc

    outputs: list[SheetOutput] = []
    used_slugs: set[str] = set()
    for name in workbook.sheet_names:
        rows = [r for r in workbook.get_sheet_by_name(name).to_python(skip_empty_area=True)]
        while rows and all(v in (None, "") for v in rows[-1]):
            rows.pop()
        if not rows:
            continue
        header, body = rows[0], rows[1:]
        names = _header_names(header)
        arrays, types = [], {}
        for i, col_name in enumerate(names):
            array, kind = _column([r[i] if i < len(r) else None for r in body])
            arrays.append(array)
            types[col_name] = kind
        slug = slugify(name)
        while slug in used_slugs:
            slug += "-1"
        used_slugs.add(slug)
        metadata = {
            "sheetdrop.source": source or src.name,
            "sheetdrop.sheet": name,
            "sheetdrop.converter_version": CONVERTER_VERSION,
        }
        table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(metadata)
        outdir.mkdir(parents=True, exist_ok=True)
        path = outdir / f"{slug}.parquet"
        pq.write_table(table, path)
        outputs.append(
            SheetOutput(
                sheet=name, slug=slug, path=path, rows=table.num_rows, columns=table.num_columns,
                column_types=types, nulls=sum(a.null_count for a in arrays), bytes=path.stat().st_size,
            )
        )
    if not outputs:
        raise WorkbookRejected("empty", "the workbook has no sheet with data")
    return outputs


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Convert a workbook to one parquet file per sheet.")
    parser.add_argument("input", type=Path)
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    try:
        outputs = convert_workbook(args.input, args.outdir)
    except WorkbookRejected as exc:
        print(f"error: {exc.code}: {exc.reason}", file=sys.stderr)
        return 2
    for out in outputs:
        print(f"{out.path}\t{out.rows} rows\t{out.columns} columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
