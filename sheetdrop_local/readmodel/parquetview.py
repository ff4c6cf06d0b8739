"""A registered version's parquet, looked at where it lives: its schema, the converter's notes on each
column, the first rows, and how its schema differs from the previous version's.

Reads go straight to storage with ranged requests (a parquet file is read from its footer), so
looking at the schema of a large version costs a few kilobytes, and a preview only the row groups
it shows.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from azure.storage.blob import BlobClient


class BlobFile(io.RawIOBase):
    """A read-only, seekable file over one blob, one ranged GET per read."""

    def __init__(self, blob: BlobClient) -> None:
        self._blob = blob
        self._size = blob.get_blob_properties().size
        self._pos = 0

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        length = min(len(buffer), self._size - self._pos)
        if length <= 0:
            return 0
        data = self._blob.download_blob(offset=self._pos, length=length).readall()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def open_parquet(blob: BlobClient) -> tuple[pq.ParquetFile, int]:
    """The blob as a parquet file, and its size in bytes."""
    import pyarrow.parquet as pq

    raw = BlobFile(blob)
    # Buffered, so that pyarrow's many small footer reads become a few requests.
    return pq.ParquetFile(io.BufferedReader(raw, buffer_size=256 * 1024)), raw.size


@dataclass(frozen=True)
class Column:
    name: str
    #: The parquet (Arrow) type, e.g. ``int64``, ``timestamp[us]``.
    arrow_type: str
    #: The converter's decision for the column (``int64``, ``timestamp``, ``string``, …), if it wrote one.
    kind: str | None
    nulls: int | None
    errors: int | None

    @property
    def type(self) -> str:
        return self.kind or self.arrow_type


@dataclass(frozen=True)
class TableInfo:
    rows: int
    columns: list[Column]
    size: int
    #: The ``sheetdrop.*`` key-value metadata the converter wrote (source, sheet, converter version, …).
    metadata: dict[str, str]


def _json_map(metadata: dict[str, str], key: str) -> dict[str, Any]:
    try:
        value = json.loads(metadata.get(key, "{}"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def table_info(parquet: pq.ParquetFile, size: int = 0) -> TableInfo:
    raw = parquet.schema_arrow.metadata or {}
    metadata = {k.decode(): v.decode(errors="replace") for k, v in raw.items() if k.startswith(b"sheetdrop.")}
    kinds, nulls, errors = (_json_map(metadata, f"sheetdrop.{key}") for key in ("column_types", "nulls", "errors"))
    columns = [Column(name=field.name, arrow_type=str(field.type), kind=kinds.get(field.name),
                      nulls=nulls.get(field.name), errors=errors.get(field.name)) for field in parquet.schema_arrow]
    return TableInfo(rows=parquet.metadata.num_rows, columns=columns, size=size, metadata=metadata)


def read_info(blob: BlobClient) -> TableInfo:
    return table_info(*open_parquet(blob))


def head(parquet: pq.ParquetFile, rows: int) -> pa.Table:
    """The first ``rows`` rows (all of them for 0), reading only the row groups needed."""
    import pyarrow as pa

    if rows <= 0:
        return parquet.read()
    tables, have = [], 0
    for group in range(parquet.num_row_groups):
        if have >= rows:
            break
        tables.append(parquet.read_row_group(group))
        have += tables[-1].num_rows
    table = pa.concat_tables(tables) if tables else parquet.schema_arrow.empty_table()
    return table.slice(0, rows)


@dataclass(frozen=True)
class Change:
    #: ``added``, ``removed`` or ``retyped``.
    kind: str
    column: str
    before: str | None
    after: str | None

    def describe(self) -> str:
        if self.kind == "added":
            return f"added {self.column} ({self.after})"
        if self.kind == "removed":
            return f"removed {self.column} ({self.before})"
        return f"{self.column}: {self.before} → {self.after}"


def schema_diff(before: TableInfo, after: TableInfo) -> list[Change]:
    """Columns added, removed or of another type, in the new version's column order (removed ones last)."""
    old = {c.name: c.type for c in before.columns}
    new = {c.name: c.type for c in after.columns}
    changes = [Change("added", name, None, kind) if name not in old else Change("retyped", name, old[name], kind)
               for name, kind in new.items() if old.get(name) != kind]
    changes += [Change("removed", name, kind, None) for name, kind in old.items() if name not in new]
    return changes
