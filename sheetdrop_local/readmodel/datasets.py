"""Dataset versions: a version by its reference, a dataset's history, and what a version holds (its
schema, first rows and change from the version before, read from storage)."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sheetdrop.storage import storage_unreachable
from sheetdrop_local import registry
from sheetdrop_local.readmodel import parquetview, tables
from sheetdrop_local.readmodel.locations import Location, location
from sheetdrop_local.registry import DatasetVersion
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient


def resolve_version(conn: sqlite3.Connection, ref: str) -> DatasetVersion:
    """``NAME``, ``NAME:latest`` or ``NAME:VERSION``; a version that is not a number is a ValueError."""
    name, _, version = ref.partition(":")
    if version in ("", "latest"):
        return registry.get(conn, name)
    if not version.isdigit():
        raise ValueError(f"NAME[:VERSION|:latest] with a version number, not {ref!r}")
    return registry.get(conn, name, int(version))


def by_name(conn: sqlite3.Connection) -> dict[str, list[DatasetVersion]]:
    """Every registered version, by dataset name (names sorted, versions oldest first)."""
    found: dict[str, list[DatasetVersion]] = {}
    for version in registry.list_versions(conn):
        found.setdefault(version.name, []).append(version)
    return found


@dataclass(frozen=True)
class History:
    """One version of a dataset, among all of its versions."""

    name: str
    #: Newest first.
    versions: list[DatasetVersion]
    version: DatasetVersion
    #: The version registered before ``version``, if any: what its schema is compared with.
    previous: DatasetVersion | None


def history(conn: sqlite3.Connection, name: str, wanted: str | None = None) -> History:
    """``wanted``: a version number as text, ``latest`` or None (the latest)."""
    versions = registry.list_versions(conn, name)
    version = versions[-1] if versions and wanted in (None, "latest") else next(
        (v for v in versions if str(v.version) == wanted), None)
    if version is None:
        raise registry.missing(name, wanted, [v.version for v in versions])
    previous = next((v for v in reversed(versions) if v.version < version.version), None)
    return History(name, list(reversed(versions)), version, previous)


def tagged_schema(version: DatasetVersion) -> list[tuple[str, str]]:
    """The columns and types the version's tags hold (the step tags every version with its schema):
    what is shown of it when its parquet cannot be read."""
    from sheetdrop_step.schema_changes import previous_schema

    return list((previous_schema(version.tags) or {}).items())


@dataclass(frozen=True)
class Preview:
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Content:
    """What a version holds, as far as storage answered; ``note`` says what could not be read."""

    where: Location
    info: parquetview.TableInfo | None = None
    preview: Preview | None = None
    #: The schema change from the previous version; None without one, or when its parquet is gone.
    changes: list[parquetview.Change] | None = None
    note: str | None = None
    #: A table version: its manifest (segments), and the first of its files with the workbooks each holds.
    manifest: tables.Manifest | None = None
    table_files: list[tables.TableFile] | None = None


#: A table version's files a page lists (a table of 100,000 workbooks has as many).
FILES_SHOWN = 200


def content(settings: LocalSettings, service: BlobServiceClient, version: DatasetVersion,
            previous: DatasetVersion | None, rows: int) -> Content:
    """Where the version lives, its schema and first ``rows`` rows (from storage), and the change
    from ``previous``; a storage problem becomes the note, not an error."""
    from azure.core.exceptions import ResourceNotFoundError

    where = location(settings, version, service)
    info = preview = changes = None
    if tables.is_table(version):
        return _table_content(service, version, where, rows)
    try:
        parquet, size = parquetview.open_parquet(service.get_blob_client(where.container, where.path))
        info = parquetview.table_info(parquet, size)
        table = parquetview.head(parquet, rows)
        preview = Preview(table.column_names, [list(r.values()) for r in table.to_pylist()])
        if previous is not None:
            before = location(settings, previous, service)
            # If the previous version's parquet is gone, the page says it could not be read.
            with contextlib.suppress(ResourceNotFoundError):
                changes = parquetview.schema_diff(
                    parquetview.read_info(service.get_blob_client(before.container, before.path)), info)
    except ResourceNotFoundError:
        return Content(where, info, preview, changes,
                       note=f"{where.blob_path} is not in storage (a lost output; see the run)")
    except Exception as exc:
        if not storage_unreachable(exc):
            raise
        return Content(where, info, preview, changes,
                       note="storage is unreachable: the schema and preview need Azurite (is the dev host running?)")
    return Content(where, info, preview, changes)


def _table_content(service: BlobServiceClient, version: DatasetVersion, where: Location, rows: int) -> Content:
    """A table version as one table: the schema its manifest holds (the union of its files'), its row count, and
    the first rows read from its first files; the change from the previous version is its tag."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        read = tables.read(service.get_container_client(where.container), version, rows)
    except ResourceNotFoundError:
        return Content(where, note=f"a file of the table version {where.blob_path} is not in storage")
    except Exception as exc:
        if not storage_unreachable(exc):
            raise
        return Content(where, note="storage is unreachable: the schema and preview need Azurite (is the dev host "
                                   "running?)")
    found = read.manifest
    columns = [parquetview.Column(name, kind, kind, None, None) for name, kind in found.schema.items()]
    info = parquetview.TableInfo(rows=found.rows, columns=columns, size=0, metadata={})
    preview = Preview(read.data.column_names, [list(r.values()) for r in read.data.to_pylist()])
    return Content(where, info, preview, None, manifest=found, table_files=read.files[:FILES_SHOWN])
