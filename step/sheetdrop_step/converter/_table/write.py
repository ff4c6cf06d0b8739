"""A sheet's table written as parquet, with what the converter decided in its key-value metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sheetdrop_step.converter._table.build import SheetTable


def write_parquet(sheet: SheetTable, path: Path, *, source: str, name: str, version: str) -> None:
    """``sheet`` into ``path``: ``source`` (the workbook), ``name`` (the sheet's) and ``version`` (the
    converter's) go into the metadata with the column types, null, error and rescued counts, where the
    header was found and the warnings."""
    table = sheet.table.replace_schema_metadata({
        "sheetdrop.source": source, "sheetdrop.sheet": name,
        "sheetdrop.converter_version": version,
        "sheetdrop.column_types": json.dumps(sheet.types, ensure_ascii=False),
        "sheetdrop.nulls": json.dumps(sheet.nulls, ensure_ascii=False),
        "sheetdrop.errors": json.dumps(sheet.errors, ensure_ascii=False),
        "sheetdrop.rows": str(sheet.table.num_rows),
        "sheetdrop.header": sheet.header.describe(),
        "sheetdrop.rescued": json.dumps(sheet.rescued, ensure_ascii=False),
        "sheetdrop.warnings": json.dumps(sheet.warnings, ensure_ascii=False),
    })
    text = [f.name for f in table.schema if pa.types.is_string(f.type)]
    # Dictionaries pay off for repeated text (cities, codes), not for numbers and timestamps; the
    # statistics of long text columns cost more than they give a reader. Fixed writer options and no
    # timestamps anywhere keep reruns byte-identical.
    texts = set(text)  # (a list's membership made 16,384 columns cost 2 s)
    pq.write_table(table, path, compression="zstd", compression_level=1, version="2.6", use_dictionary=text,
                   write_statistics=[f.name for f in table.schema if f.name not in texts], store_schema=True)
