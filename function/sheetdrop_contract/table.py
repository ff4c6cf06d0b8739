"""A folder as one table (``"versions": "table"`` in its ``sheetdrop.json``): what a table version is on the output
datastore, written by the step and read by the local read model.

A table's parquet files live in **segments**: immutable folders ``tables/<dataset>/segments/<id>/`` of parquet files,
each described by ``tables/<dataset>/segments/<id>.json`` (its files and the source blob versions each holds). A
table **version** is an immutable manifest, ``tables/<dataset>/<N>/manifest.json``, listing its segments, so what
AzureML registers is one glob pattern per segment, not one path per file: at 100,000 workbooks a version lists a
few hundred patterns (docs/azureml.md, "A folder as one table"). Neither parquet files nor segments are ever
modified; a segment holding a blob converted again or deleted is replaced, in the next version, by a new segment of
its other files (``sheetdrop_step.table_layout`` says how the next version follows). Manifests are written
create-only (``If-None-Match: *``), so two runs that end at once take ``N`` and ``N + 1`` one after the other.

Each row says where it came from: the step adds :data:`SOURCE_COLUMNS` to every file of a table (the platform's
path column, MLTable's ``include_path_column``, names the parquet file, not the workbook).

Plain data, standard library only. README, "A folder as one table".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

#: The folder option (read_options ``versions``): a dataset version per file (the default) or per table.
PER_FILE, TABLE = "file", "table"
#: Where table manifests and segments live on the output datastore.
TABLES_ROOT = "tables"
SEGMENTS = "segments"
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
#: On a table version: its number (the manifest's), how many files, segments and source workbooks it holds.
TABLE_VERSION_TAG, TABLE_FILES_TAG, TABLE_SOURCES_TAG = "table_version", "table_files", "table_sources"
TABLE_SEGMENTS_TAG = "table_segments"


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


def segment_folder(dataset: str, segment: str) -> str:
    return f"{TABLES_ROOT}/{dataset}/{SEGMENTS}/{segment}"


def segment_description(dataset: str, segment: str) -> str:
    """Beside the segment's folder, not in it: the folder's pattern must match parquet files only."""
    return f"{segment_folder(dataset, segment)}.json"


def segment_pattern(dataset: str, segment: str) -> str:
    """What a registration lists for a segment: its parquet files, by a glob (v1 ``from_parquet_files``, an MLTable's
    ``pattern``). Segments are immutable, so the pattern matches the same files for as long as it is read."""
    return f"{segment_folder(dataset, segment)}/*.parquet"


class TableTooLarge(Exception):
    """A table version would list more segments than a registration should (``table_layout.Layout.max_segments``)."""


@dataclass(frozen=True)
class TableFile:
    """One parquet file of a table and the blob versions whose rows it holds (one: a file is one sheet of one
    workbook version)."""

    path: str  # on the output datastore (in a segment's folder); a local path while the step still holds it
    sources: tuple[tuple[str, str], ...]  # (blob, etag)
    rows: int
    schema: dict[str, str]
    bytes: int = 0

    def blobs(self) -> set[str]:
        return {blob for blob, _ in self.sources}

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sources": [{"blob": b, "etag": e} for b, e in self.sources], "rows": self.rows,
                "schema": self.schema, "bytes": self.bytes}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> TableFile:
        return cls(str(item["path"]), tuple((str(s["blob"]), str(s["etag"])) for s in item["sources"]),
                   int(item["rows"]), dict(item["schema"]), int(item.get("bytes", 0)))


@dataclass(frozen=True)
class Segment:
    """An immutable folder of a table's parquet files, described once (:func:`segment_description`)."""

    dataset: str
    id: str
    files: tuple[TableFile, ...]

    @cached_property
    def blobs(self) -> frozenset[str]:
        """The blobs it holds rows of (a commit checks every segment of a version: hundreds at 100,000 files)."""
        return frozenset(blob for f in self.files for blob in f.blobs())

    def ref(self) -> SegmentRef:
        return SegmentRef(self.id, len(self.files), sum(f.rows for f in self.files), sum(f.bytes for f in self.files),
                          len(self.blobs), union_schema(f.schema for f in self.files))

    def to_text(self) -> str:
        return json.dumps({"dataset": self.dataset, "id": self.id, "files": [f.to_json() for f in self.files]},
                          ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_text(cls, text: str | bytes) -> Segment:
        data = json.loads(text)
        return cls(str(data["dataset"]), str(data["id"]), tuple(TableFile.from_json(f) for f in data["files"]))


@dataclass(frozen=True)
class SegmentRef:
    """What a manifest says of one of its segments, so that a version's size and schema need no segment read."""

    id: str
    files: int
    rows: int
    bytes: int
    sources: int
    schema: dict[str, str]

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> SegmentRef:
        return cls(str(item["id"]), int(item["files"]), int(item["rows"]), int(item["bytes"]), int(item["sources"]),
                   dict(item["schema"]))


@dataclass(frozen=True)
class Manifest:
    """One table version: its segments. ``schema`` is the union of their columns (:func:`union_schema`)."""

    dataset: str
    version: int
    datastore: str
    segments: tuple[SegmentRef, ...]
    schema: dict[str, str]
    #: Which run committed it, and what it did: blobs added, replaced, gone (deleted).
    run_id: str = ""
    change: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.segments)

    @property
    def file_count(self) -> int:
        return sum(s.files for s in self.segments)

    @property
    def source_count(self) -> int:
        return sum(s.sources for s in self.segments)

    def patterns(self) -> list[str]:
        return [segment_pattern(self.dataset, s.id) for s in self.segments]

    def to_text(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_text(cls, text: str | bytes) -> Manifest:
        data = json.loads(text)
        return cls(str(data["dataset"]), int(data["version"]), str(data["datastore"]),
                   tuple(SegmentRef.from_json(s) for s in data["segments"]), dict(data["schema"]),
                   str(data.get("run_id", "")), dict(data.get("change", {})))


def segments_of(manifest: Manifest, read: Callable[[str], bytes]) -> list[Segment]:
    """The manifest's segments, described (``read``: a datastore path's bytes)."""
    return [Segment.from_text(read(segment_description(manifest.dataset, s.id))) for s in manifest.segments]


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


def mltable_text(datastore: str, patterns: Iterable[str]) -> str:
    """The MLTable file of a table version (AzureML v2's ``mltable`` asset): each segment's parquet files by an
    absolute ``azureml://`` glob (learn: machine-learning/reference-yaml-mltable, ``paths`` items ``pattern``), read
    as parquet. YAML, written by hand: each pattern quoted as JSON, which YAML reads as a double-quoted scalar."""
    lines = ["type: mltable", "paths:"]
    lines += [f"  - pattern: {json.dumps(f'azureml://datastores/{datastore}/paths/{p}')}" for p in patterns]
    lines += ["transformations:", "  - read_parquet:", "      include_path_column: false", ""]
    return "\n".join(lines)
