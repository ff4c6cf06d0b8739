"""A table version read back as one table: its manifest, its files' rows under the table's schema (the union of
its files' columns; a file without a column reads as nulls there, a column whose files disagree on its type is
read as text), and the first rows without reading every file."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sheetdrop_contract import table
from sheetdrop_contract.table import Manifest, TableFile

__all__ = ["Manifest", "TableFile", "TableRead", "files", "is_table", "manifest", "read"]
from sheetdrop_local.registry import DatasetVersion

if TYPE_CHECKING:
    import pyarrow as pa
    from azure.storage.blob import ContainerClient


def is_table(version: DatasetVersion) -> bool:
    return table.TABLE_VERSION_TAG in version.tags


def manifest(container: ContainerClient, version: DatasetVersion) -> Manifest:
    return Manifest.from_text(container.get_blob_client(version.relative_path).download_blob().readall().decode())


def files(container: ContainerClient, found: Manifest) -> list[TableFile]:
    """The version's parquet files, segment by segment (each segment's description read)."""
    return [item for segment in table.segments_of(found, _reader(container)) for item in segment.files]


def _reader(container: ContainerClient) -> Callable[[str], bytes]:
    return lambda path: container.get_blob_client(path).download_blob().readall()


@dataclass(frozen=True)
class TableRead:
    manifest: Manifest
    files: list[TableFile]
    #: The rows read (all of them, or the first ``rows`` asked for), under the table's schema.
    data: pa.Table


def arrow_schema(files: list[pa.Schema]) -> pa.Schema:
    """The table's schema from its files' Arrow schemas: by name, first seen first; types widened as
    ``table.widen`` says (whole numbers and fractions → float64, any other disagreement → string)."""
    import pyarrow as pa

    numbers = {pa.int64(), pa.float64()}
    fields: dict[str, pa.DataType] = {}
    for schema in files:
        for item in schema:
            known = fields.setdefault(item.name, item.type)
            if known != item.type:
                fields[item.name] = pa.float64() if {known, item.type} <= numbers else pa.string()
    return pa.schema([pa.field(name, kind) for name, kind in fields.items()])


def read(container: ContainerClient, version: DatasetVersion, rows: int = 0) -> TableRead:
    """The version's rows (``rows`` > 0: only the first ones, stopping at the file that has them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    found = manifest(container, version)
    listed = files(container, found)
    tables = []
    have = 0
    for item in listed:
        if rows > 0 and have >= rows:
            break
        data = pq.read_table(io.BytesIO(container.get_blob_client(item.path).download_blob().readall()))
        tables.append(data)
        have += data.num_rows
    schema = arrow_schema([t.schema for t in tables])
    # Columns only the files not read have (a preview stops early): there, as the table's schema says, null.
    for name in found.schema:
        if name not in schema.names:
            schema = schema.append(pa.field(name, pa.string()))
    unified = [_conform(t, schema) for t in tables]
    data = pa.concat_tables(unified) if unified else schema.empty_table()
    return TableRead(found, listed, data.slice(0, rows) if rows > 0 else data)


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    columns = []
    for item in schema:
        if item.name not in data.column_names:
            columns.append(pa.nulls(data.num_rows, item.type))
        elif data.schema.field(item.name).type != item.type:
            columns.append(data.column(item.name).cast(item.type))
        else:
            columns.append(data.column(item.name))
    return pa.Table.from_arrays(columns, schema=schema)
