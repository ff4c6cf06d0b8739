"""A folder as one table (``"versions": "table"`` in its ``sheetdrop.json``): what a table version is, and how the
next one follows from the previous one.

A table version is an immutable **manifest** on the output datastore, ``tables/<dataset>/<N>/manifest.json``: the
parquet files it is made of and, for each file, the source blob version(s) whose rows it holds. Parquet files are
never modified. The next version is the previous one's files less those of the blobs this run converted again
(an overwritten blob replaces its own rows) and of the blobs that are gone (a deleted blob's rows leave), plus the
files this run wrote. The manifest is written create-only (``If-None-Match: *``), so two runs that end at once
take ``N`` and ``N + 1`` one after the other, the second merging onto the first (``sheetdrop_step.tables``).

Each row says where it came from: the step adds :data:`SOURCE_COLUMNS` to every file of a table (the platform's
path column, MLTable's ``include_path_column``, names the parquet file, not the workbook).

Plain data, standard library only: the step writes manifests, the local read model and the runner read them.
README, "A folder as one table".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: The folder option (read_options ``versions``): a dataset version per file (the default) or per table.
PER_FILE, TABLE = "file", "table"
#: Where table manifests live on the output datastore.
TABLES_ROOT = "tables"
MANIFEST_FILE = "manifest.json"
#: The file AzureML v2 reads a table version's ``mltable`` data asset from, beside the manifest.
MLTABLE_FILE = "MLTable"
#: Added to every row of a table: the workbook (blob name) and its version (etag) the row was read from.
SOURCE_BLOB_COLUMN, SOURCE_ETAG_COLUMN = "_source_blob", "_source_etag"
SOURCE_COLUMNS = (SOURCE_BLOB_COLUMN, SOURCE_ETAG_COLUMN)
#: The type a column takes in the table when files disagree on it (``schema_changes: evolve``): whole numbers and
#: numbers with a fraction are numbers (``float64``: a workbook whose amounts are all whole has an int64 column);
#: any other disagreement is text, which every value can be read as. sheetdrop's readers cast each file to it.
WIDENED = "string"
NUMBERS = frozenset({"int64", "float64"})
#: On a table version: its number (the manifest's), how many files and source workbooks it lists.
TABLE_VERSION_TAG, TABLE_FILES_TAG, TABLE_SOURCES_TAG = "table_version", "table_files", "table_sources"
#: Files one table version lists at most. AzureML documents no limit on a v1 dataset's path list or an MLTable's
#: ``paths``, but v1 builds one ``paths`` entry per file (182 bytes each: 1,000 files are a 182 KB definition,
#: 100,000 an 18 MB one that takes 29 s and 660 MB to build) and the service's acceptance of that is unconfirmed
#: (docs/azureml.md, "A folder as one table"). A commit that would list more fails its run with ``table-too-large``.
MAX_FILES = 1000


def table_name(base: str, sheet_slug: str) -> str:
    """The table a sheet feeds: always ``<base>_<sheet>``, whatever the workbook's number of sheets, so that a sheet
    that only some workbooks have is a table of its own and a one-sheet workbook feeds the same table as a
    three-sheet one with that sheet (the per-file rule, ``contract.sheet_dataset_name``, keeps the bare name for a
    one-sheet workbook)."""
    return f"{base}_{sheet_slug}"


def version_folder(dataset: str, version: int) -> str:
    return f"{TABLES_ROOT}/{dataset}/{version}"


def manifest_path(dataset: str, version: int) -> str:
    return f"{version_folder(dataset, version)}/{MANIFEST_FILE}"


def versions_prefix(dataset: str) -> str:
    return f"{TABLES_ROOT}/{dataset}/"


def version_of(path: str, dataset: str) -> int | None:
    """The version number of a manifest's path (``tables/<dataset>/<N>/manifest.json``), None for any other."""
    rest = path.removeprefix(versions_prefix(dataset))
    number, _, file = rest.partition("/")
    return int(number) if rest != path and file == MANIFEST_FILE and number.isdigit() else None


class TableTooLarge(Exception):
    """A table version would list more than MAX_FILES files."""


@dataclass(frozen=True)
class TableFile:
    """One parquet file of a table version and the blob versions whose rows it holds."""

    path: str  # on the output datastore
    #: ``[{"blob": name, "etag": etag}]``: one per file the step writes; a compacted segment would hold many.
    sources: tuple[tuple[str, str], ...]
    rows: int
    schema: dict[str, str]

    def blobs(self) -> set[str]:
        return {blob for blob, _ in self.sources}

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sources": [{"blob": b, "etag": e} for b, e in self.sources], "rows": self.rows,
                "schema": self.schema}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> TableFile:
        return cls(str(item["path"]), tuple((str(s["blob"]), str(s["etag"])) for s in item["sources"]),
                   int(item["rows"]), dict(item["schema"]))


@dataclass(frozen=True)
class Manifest:
    """One table version. ``schema`` is the union of its files' columns (:func:`union_schema`)."""

    dataset: str
    version: int
    datastore: str
    files: tuple[TableFile, ...]
    schema: dict[str, str]
    #: Which run committed it, and what it did: blobs replaced, blobs gone (deleted), files added.
    run_id: str = ""
    change: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def sources(self) -> dict[str, str]:
        """Each source blob the version holds, with its etag."""
        return {blob: etag for f in self.files for blob, etag in f.sources}

    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    def to_text(self) -> str:
        data = asdict(self) | {"files": [f.to_json() for f in self.files]}
        return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(str(data["dataset"]), int(data["version"]), str(data["datastore"]),
                   tuple(TableFile.from_json(f) for f in data["files"]), dict(data["schema"]),
                   str(data.get("run_id", "")), dict(data.get("change", {})))


def widen(first: str, second: str) -> str:
    """The type a column of files of these two types is read as."""
    if first == second:
        return first
    return "float64" if {first, second} <= NUMBERS else WIDENED


def union_schema(schemas: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The columns of all files by name, in the order first seen, each of the type its files' types widen to
    (:func:`widen`). A file without a column reads as nulls there."""
    union: dict[str, str] = {}
    for schema in schemas:
        for name, kind in schema.items():
            union[name] = widen(union.get(name, kind), kind)
    return union


def merge(previous: Manifest | None, *, dataset: str, datastore: str, added: Iterable[TableFile],
          replaced: Iterable[str], gone: Iterable[str], run_id: str) -> Manifest | None:
    """The next version: ``previous``'s files less those holding a blob in ``replaced`` (converted again by this
    run, whether or not it still has this sheet) or ``gone`` (deleted), plus ``added`` (a later file of one blob
    replacing an earlier one: two versions of a blob in one batch). None when nothing changes."""
    added = list(added)
    newest: dict[str, TableFile] = {}
    for item in added:
        for blob in item.blobs():
            newest[blob] = item
    added = [item for item in added if all(newest[blob] is item for blob in item.blobs())]
    dropping = set(replaced) | set(gone) | {blob for item in added for blob in item.blobs()}
    kept = [f for f in (previous.files if previous else ()) if not f.blobs() & dropping]
    removed = [f for f in (previous.files if previous else ()) if f.blobs() & dropping]
    if not added and not removed:
        return None
    files = (*kept, *added)
    if len(files) > MAX_FILES:
        raise TableTooLarge(f"{dataset} would list {len(files)} parquet files, more than {MAX_FILES} (a table "
                            "version's limit here: docs/azureml.md, 'A folder as one table')")
    held = {blob for f in (previous.files if previous else ()) for blob in f.blobs()}
    gone_held = sorted(set(gone) & held)
    change = {"added": sorted({b for f in added for b in f.blobs()} - held),
              "replaced": sorted(({b for f in added for b in f.blobs()} | set(replaced)) & held - set(gone)),
              "deleted": gone_held}
    return Manifest(dataset, (previous.version if previous else 0) + 1, datastore, files,
                    union_schema(f.schema for f in files), run_id, {k: v for k, v in change.items() if v})


def mltable_text(datastore: str, paths: Iterable[str]) -> str:
    """The MLTable file of a table version (AzureML v2's ``mltable`` asset): every file by its absolute
    ``azureml://`` path (learn: machine-learning/reference-yaml-mltable, ``paths`` items ``file``), read as parquet.
    YAML, written by hand: each path quoted as JSON, which YAML reads as a double-quoted scalar."""
    lines = ["type: mltable", "paths:"]
    lines += [f"  - file: {json.dumps(f'azureml://datastores/{datastore}/paths/{p}')}" for p in paths]
    lines += ["transformations:", "  - read_parquet:", "      include_path_column: false", ""]
    return "\n".join(lines)
