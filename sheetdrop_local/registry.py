"""The local dataset registry: names, auto-incremented versions, datastore paths and tags.

It plays the part of AzureML's dataset registry for the embedded default; a
version loads back as an Arrow table (or a pandas DataFrame) from Azurite.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sheetdrop_contract import contract

if TYPE_CHECKING:
    import pyarrow as pa
    from azure.storage.blob import BlobServiceClient


class DatasetNotFound(LookupError):
    pass


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    version: int
    datastore: str
    relative_path: str
    description: str
    tags: dict[str, str]
    run_id: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DatasetVersion:
        data = dict(row)
        data["tags"] = json.loads(data["tags"])
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def register(
    conn: sqlite3.Connection,
    *,
    name: str,
    datastore: str,
    relative_path: str,
    description: str = "",
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
) -> int:
    """Add the next version of ``name``. Call inside a write transaction so the version number
    cannot be taken twice."""
    (latest,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM datasets WHERE name = ?", (name,)).fetchone()
    version = latest + 1
    conn.execute(
        """INSERT INTO datasets (name, version, datastore, relative_path, description, tags, run_id, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (name, version, datastore, relative_path, description, json.dumps(tags or {}, sort_keys=True), run_id,
         time.time()),
    )
    return version


def unregister_run(conn: sqlite3.Connection, run_id: str) -> list[DatasetVersion]:
    """Remove the versions a run registered (its output was lost); call inside a write transaction."""
    rows = conn.execute("DELETE FROM datasets WHERE run_id = ? RETURNING *", (run_id,)).fetchall()
    return [DatasetVersion.from_row(r) for r in rows]


def latest_by_prefix(conn: sqlite3.Connection, base: str) -> dict[str, dict[str, str]]:
    """Tags of the latest version of every dataset named like one a workbook named ``base`` feeds
    (``contract.named_like_a_sheet_of``): what AzureML's registry would answer the step, which
    keeps those ``contract.fed_by`` its workbook. The plain prefix narrows the scan; the rule decides."""
    rows = conn.execute(
        """SELECT name, tags FROM datasets d WHERE substr(name, 1, ?) = ?
           AND version = (SELECT MAX(version) FROM datasets WHERE name = d.name)""",
        (len(base), base)).fetchall()
    return {row["name"]: json.loads(row["tags"]) for row in rows if contract.named_like_a_sheet_of(row["name"], base)}


def per_file_versions(conn: sqlite3.Connection, base: str) -> list[dict[str, Any]]:
    """Every version of one file (not a table version) of the datasets a workbook named ``base`` feeds, oldest
    first: name, path and tags, as AzureML's registry lists a dataset's versions."""
    from sheetdrop_contract.table import TABLE_VERSION_TAG

    rows = conn.execute("SELECT name, relative_path, tags FROM datasets WHERE substr(name, 1, ?) = ? "
                        "ORDER BY created_at, version", (len(base), base)).fetchall()
    found = []
    for row in rows:
        tags = json.loads(row["tags"])
        if TABLE_VERSION_TAG not in tags and contract.fed_by(row["name"], tags, base):
            found.append({"name": row["name"], "relative_path": row["relative_path"], "tags": tags})
    return found


def for_run(conn: sqlite3.Connection, run_id: str) -> list[DatasetVersion]:
    rows = conn.execute("SELECT * FROM datasets WHERE run_id = ? ORDER BY name", (run_id,)).fetchall()
    return [DatasetVersion.from_row(r) for r in rows]


def for_runs(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, list[DatasetVersion]]:
    """The versions each of these runs registered, by run id, in one query."""
    found: dict[str, list[DatasetVersion]] = {}
    if run_ids:
        rows = conn.execute(f"SELECT * FROM datasets WHERE run_id IN ({', '.join('?' * len(run_ids))}) ORDER BY name",
                            run_ids)
        for row in rows:
            found.setdefault(row["run_id"], []).append(DatasetVersion.from_row(row))
    return found


def get(conn: sqlite3.Connection, name: str, version: int | None = None) -> DatasetVersion:
    if version is None:
        row = conn.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)).fetchone()
    else:
        row = conn.execute("SELECT * FROM datasets WHERE name = ? AND version = ?", (name, version)).fetchone()
    if row is None:
        numbers = [r[0] for r in conn.execute("SELECT version FROM datasets WHERE name = ? ORDER BY version", (name,))]
        raise missing(name, str(version), numbers)
    return DatasetVersion.from_row(row)


def missing(name: str, wanted: str | None, versions: list[int]) -> DatasetNotFound:
    """What a person reads when ``name`` or its version ``wanted`` is not registered: which versions
    there are (``1`` to ``3`` as a range; ``1, 2, 4`` when a lost output took one away)."""
    if not versions:
        return DatasetNotFound(f"no dataset {name!r} (see `sheetdrop datasets`)")
    if len(versions) == 1:
        return DatasetNotFound(f"{name}: version {wanted} does not exist; its only version is {versions[0]}")
    span = f"{versions[0]}\N{EN DASH}{versions[-1]}" if versions == list(range(versions[0], versions[-1] + 1)) else \
        ", ".join(map(str, versions))
    return DatasetNotFound(f"{name}: version {wanted} does not exist; versions are {span}")


def list_versions(conn: sqlite3.Connection, name: str | None = None) -> list[DatasetVersion]:
    if name:
        rows = conn.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version", (name,)).fetchall()
    else:
        rows = conn.execute("SELECT * FROM datasets ORDER BY name, version").fetchall()
    return [DatasetVersion.from_row(r) for r in rows]


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0])


def load_table(dataset: DatasetVersion, service: BlobServiceClient, container: str) -> pa.Table:
    """Read a registered version back from storage (``container`` is its datastore's container)."""
    import io

    import pyarrow.parquet as pq

    data = service.get_blob_client(container, dataset.relative_path).download_blob().readall()
    return pq.read_table(io.BytesIO(data))
