"""Table mode in the step: what a run (or a batch) brings to its folders' tables, committed as one new version per
table at the run's end (``sheetdrop_contract.table`` says what a version is, ``table_layout`` what the next one
holds).

Per converted blob version: each sheet's parquet gets the source columns and becomes a file of the table
``<base>_<sheet>``; the blob is *replaced* in every table of its folder, so a sheet it no longer has leaves that
table too. At the end, per table: the latest manifest on the output datastore and its segments; the blobs it holds
that are gone from the input container (listed here: deletions are observed at commit); the plan; its new segments
written, then the manifest, create-only, as version N + 1 (on a conflict, another run took N + 1: read it and plan
again); then registered.
A table that has no manifest yet but per-file versions (a folder switched to table mode) starts from each blob's
latest per-file output, copied with the source columns added (parquet files are never modified in place).
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sheetdrop_contract import table
from sheetdrop_contract.contract import ATTEMPT_TAG, BASE_TAG, SOURCE_TAGS, Registration, slug
from sheetdrop_contract.table import Manifest, Segment, TableFile
from sheetdrop_step.schema_changes import CHANGE_TAG, SCHEMA_TAG, compare
from sheetdrop_step.table_layout import Layout, Move, Plan, plan

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from sheetdrop_step.contexts import StepContext

#: Conflicting commits tried again before the run fails (each one means another run committed meanwhile).
MAX_COMMIT_TRIES = 20
#: Segment files read or written at once (each a blob request).
PARALLEL = 8
#: Where a switched folder's earlier per-file outputs are copied to, with the source columns, in the run's output.
SEED_FOLDER = "_table_seed"


def with_source_columns(types: dict[str, str]) -> dict[str, str]:
    return {**types, **{column: "string" for column in table.SOURCE_COLUMNS}}


def without_source_columns(types: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in types.items() if k not in table.SOURCE_COLUMNS}


def add_source_columns(src: Path, blob: str, etag: str, target: Path | None = None) -> int:
    """Rewrite a parquet file with :data:`table.SOURCE_COLUMNS` appended (the converter's metadata kept); its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = pq.read_table(src)
    for column, value in zip(table.SOURCE_COLUMNS, (blob, etag), strict=True):
        if column in data.column_names:  # a switched folder's copy made before: keep one of each
            data = data.drop_columns([column])
        data = data.append_column(pa.field(column, pa.string()), pa.array([value] * data.num_rows, pa.string()))
    target = target or src
    tmp = target.with_suffix(".tmp")
    pq.write_table(data, tmp)
    os.replace(tmp, target)
    return data.num_rows


class ManifestStore:
    """Table manifests and segments on the output datastore's container."""

    def __init__(self, container: ContainerClient) -> None:
        self.container = container
        self._described: dict[tuple[str, str], Segment] = {}  # segments are immutable: read each once

    def latest(self, dataset: str) -> Manifest | None:
        from azure.core.exceptions import ResourceNotFoundError

        prefix = table.versions_prefix(dataset)
        try:  # the version folders only (tables/<dataset>/<N>/), not every segment's file
            folders = [item.name for item in self.container.walk_blobs(name_starts_with=prefix, delimiter="/")]
        except ResourceNotFoundError:  # no container yet (locally, before the first output is uploaded)
            return None
        numbers = [int(n) for n in (f.removeprefix(prefix).rstrip("/") for f in folders) if n.isdigit()]
        return self.read(dataset, max(numbers)) if numbers else None

    def read(self, dataset: str, version: int) -> Manifest:
        return Manifest.from_text(self._bytes(table.manifest_path(dataset, version)))

    def described(self, manifest: Manifest) -> dict[str, Segment]:
        """The manifest's segments by id (read at most once each; several at a time: hundreds at 100,000 files)."""
        wanted = [ref.id for ref in manifest.segments if (manifest.dataset, ref.id) not in self._described]
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            for segment in pool.map(lambda i: Segment.from_text(self._bytes(table.segment_description(
                    manifest.dataset, i))), wanted):
                self._described[(manifest.dataset, segment.id)] = segment
        return {ref.id: self._described[(manifest.dataset, ref.id)] for ref in manifest.segments}

    def write(self, plan: Plan) -> bool:
        """Write the plan's new segments, then its manifest unless that version exists (If-None-Match: *); False
        when another run took it (then :meth:`discard` the segments, which no version lists)."""
        from azure.core.exceptions import ResourceExistsError

        self._ensure_container()
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            list(pool.map(self._place, plan.moves))
        for segment in plan.segments:
            # overwrite: the ids are this plan's own, and a retried PUT whose first try landed must not fail.
            self.container.upload_blob(table.segment_description(segment.dataset, segment.id), segment.to_text(),
                                       overwrite=True)
        manifest = plan.manifest
        path = table.manifest_path(manifest.dataset, manifest.version)
        try:
            self.container.upload_blob(path, manifest.to_text(), overwrite=False)
        except ResourceExistsError:
            # Another run's version N, or ours: the storage SDK retries a PUT after a timeout, and the first try
            # may have landed (then its 409 is our own write).
            if self._bytes(path).decode("utf-8") != manifest.to_text():
                return False
        # v2 registers the version as an mltable asset over this folder (contexts/azureml_v2.py).
        self.container.upload_blob(f"{table.version_folder(manifest.dataset, manifest.version)}/{table.MLTABLE_FILE}",
                                   table.mltable_text(manifest.datastore, manifest.patterns()), overwrite=True)
        return True

    def discard(self, plan: Plan) -> None:
        """Delete the segments of a plan whose manifest lost its version: their ids are this plan's own, so no
        version lists them (best effort: a file left here is unreferenced, never read)."""
        names = [m.target.path for m in plan.moves] + \
            [table.segment_description(s.dataset, s.id) for s in plan.segments]
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            list(pool.map(self._delete, names))

    def _delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(name)

    def _place(self, move: Move) -> None:
        target = self.container.get_blob_client(move.target.path)
        # overwrite: a new segment's name is this plan's own (see write).
        if move.local:
            with open(move.origin or "", "rb") as data:
                target.upload_blob(data, overwrite=True)
        elif move.origin:  # an earlier segment's file, its bytes unchanged (through the step: docs/azureml.md)
            found = self.container.download_blob(move.origin)
            target.upload_blob(found.chunks(), length=found.size, overwrite=True)
        else:
            target.upload_blob(empty_parquet(move.target.schema), overwrite=True)

    def _ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        # A datastore's container exists; Azurite's may not before the first upload.
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    def _bytes(self, path: str) -> bytes:
        return self.container.get_blob_client(path).download_blob().readall()


def empty_parquet(schema: dict[str, str]) -> bytes:
    """A parquet file of no rows with these columns (type names as the schema tags spell them)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sheetdrop_contract.column_types import BY_NAME

    fields = [pa.field(name, pa.type_for_alias(BY_NAME[kind].arrow) if kind in BY_NAME else pa.string())
              for name, kind in schema.items()]
    data = io.BytesIO()
    pq.write_table(pa.schema(fields).empty_table(), data)
    return data.getvalue()


@dataclass
class _Pending:
    base: str
    sheet: str
    tags: dict[str, str]
    files: list[TableFile] = field(default_factory=list)


@dataclass
class TableRun:
    """What one run brings to its folders' tables; :meth:`commit` at its end."""

    context: StepContext
    datastore: str
    input_account: str
    outdir: Path
    relative_dir: str
    layout: Layout = field(default_factory=Layout)
    pending: dict[str, _Pending] = field(default_factory=dict)
    #: base → (input container, {blob: etag} converted by this run; a later version of a blob in a batch wins)
    replaced: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    def converted(self, base: str, source: dict[str, str]) -> None:
        """A blob version converted: its rows replace its earlier ones in every table of ``base``."""
        self.replaced.setdefault(base, (source["source_container"], {}))[1][source["source_blob"]] = \
            source["source_etag"]

    def deleted(self, base: str, container: str) -> None:
        """A blob of ``base``'s folder is gone: commit its tables (the commit finds which blobs are gone)."""
        self.replaced.setdefault(base, (container, {}))

    def add(self, name: str, base: str, sheet: str, path: Path, source: dict[str, str], types: dict[str, str],
            tags: dict[str, str]) -> None:
        rows = add_source_columns(path, source["source_blob"], source["source_etag"])
        pending = self.pending.setdefault(name, _Pending(base, sheet, tags))
        pending.tags = tags  # the latest source's, as a per-file version's
        # By its local path: the commit uploads it into a segment (a mounted output's copy is uploaded by AzureML
        # only as the file closes or the step ends, so it is not read back from the datastore).
        pending.files.append(TableFile(str(path), ((source["source_blob"], source["source_etag"]),), rows,
                                       with_source_columns(types), path.stat().st_size))

    def commit(self) -> list[str]:
        """One new version per table that changed; the references registered."""
        if not self.replaced:
            return []
        store = ManifestStore(self.context.output_container(self.datastore))
        registered = []
        for base, (container, converted) in self.replaced.items():
            names = sorted({n for n, p in self.pending.items() if p.base == base} |
                           {n for n in self.context.previous_names(base) if self._is_table(n)})
            latest = {name: store.latest(name) for name in names}
            held = {blob for m in latest.values() if m for segment in store.described(m).values()
                    for blob in segment.blobs}
            # Lineage: a table holds each blob's current version. A blob deleted since it was read leaves the
            # table; one overwritten since is left to its newer version's run (which may have committed already).
            current = self._current(container, held | set(converted))
            gone = (held | set(converted)) - current.keys()
            stale = {blob for blob, etag in converted.items() if blob in current and
                     current[blob].strip('"') != etag.strip('"')}
            for blob in sorted(stale | (gone & converted.keys())):
                print(f"table: {blob} is {'now etag ' + current[blob] if blob in current else 'deleted'}, not the "
                      f"version this run read; its rows are left to {'that version' if blob in current else 'go'}",
                      flush=True)
            blobs = set(converted) - gone - stale
            for name in names:
                reference = self._commit_one(store, name, base, latest[name], blobs, gone, stale)
                if reference:
                    registered.append(reference)
        return registered

    def _is_table(self, name: str) -> bool:
        return table.TABLE_VERSION_TAG in (self.context.previous_tags(name) or {})

    def _current(self, container: str, blobs: set[str]) -> dict[str, str]:
        """Each of ``blobs`` that exists, with its etag: one listing per folder they are in (5,000 a page)."""
        if not blobs:
            return {}
        from azure.storage.blob import ContainerClient

        client = ContainerClient(self.input_account, container, credential=self.context.storage_credential())
        folders = {str(PurePosixPath(b).parent) + "/" if "/" in b else "" for b in blobs}
        present: dict[str, str] = {}
        for folder in sorted(folders):
            present |= {item.name: item.etag for item in client.list_blobs(name_starts_with=folder or None)
                        if item.name in blobs}
        return present

    def _commit_one(self, store: ManifestStore, name: str, base: str, latest: Manifest | None, blobs: set[str],
                    gone: set[str], stale: set[str]) -> str | None:
        pending = self.pending.get(name)
        added = [f for f in pending.files if not f.blobs() & (gone | stale)] if pending else []
        if latest is None:
            added = [*self._seed(name, base, blobs | gone), *added]
        for _ in range(MAX_COMMIT_TRIES):
            described = store.described(latest) if latest else {}
            planned = plan(latest, described, dataset=name, datastore=self.datastore, added=added, replaced=blobs,
                           gone=gone, run_id=self.context.run_id, layout=self.layout)
            if planned is None:
                return None
            if store.write(planned):
                return self._register(name, base, planned.manifest, latest, pending)
            store.discard(planned)
            latest = store.latest(name)  # another run committed first: plan again onto it
        raise RuntimeError(f"{name}: {MAX_COMMIT_TRIES} table commits in a row lost to other runs")

    def _seed(self, name: str, base: str, skip: set[str]) -> list[TableFile]:
        """A switched folder's table starts from each blob's latest per-file output of this sheet."""
        store = self.context.output_container(self.datastore)
        newest: dict[str, dict[str, Any]] = {}
        for version in self.context.per_file_versions(base):
            tags = version["tags"]
            if table.table_name(base, slug(tags.get("sheet", ""), "sheet")) == name and \
                    tags.get("source_blob") not in skip:
                newest[tags["source_blob"]] = version  # oldest first: the last one is the latest
        files = []
        for index, (blob, version) in enumerate(sorted(newest.items())):
            target = self.outdir / SEED_FOLDER / name / f"{index}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.get_blob_client(version["relative_path"]).download_blob().readall())
            rows = add_source_columns(target, blob, version["tags"]["source_etag"])
            types = json.loads(version["tags"].get(SCHEMA_TAG, "{}"))
            files.append(TableFile(str(target), ((blob, version["tags"]["source_etag"]),), rows,
                                   with_source_columns(types), target.stat().st_size))
        if files:
            print(f"table: {name} starts from {len(files)} workbooks' per-file versions (the folder switched to "
                  "table mode)", flush=True)
        return files

    def _register(self, name: str, base: str, manifest: Manifest, latest: Manifest | None,
                  pending: _Pending | None) -> str:
        previous = without_source_columns(latest.schema) if latest else None
        change = "first version" if previous is None else \
            compare(previous, without_source_columns(manifest.schema)).describe()
        # A version with files of this run carries its latest workbook's tags, as a per-file version does; one that
        # only drops rows (deleted workbooks) converted nothing, so it names no source workbook.
        inherited = pending.tags if pending else {k: v for k, v in (self.context.previous_tags(name) or {}).items()
                                                  if k not in (*SOURCE_TAGS, ATTEMPT_TAG)}
        tags = {**inherited,
                "run_id": self.context.run_id, BASE_TAG: base, "rows": str(manifest.rows),
                "columns": str(len(manifest.schema)), SCHEMA_TAG: json.dumps(manifest.schema), CHANGE_TAG: change,
                table.TABLE_VERSION_TAG: str(manifest.version), table.TABLE_FILES_TAG: str(manifest.file_count),
                table.TABLE_SEGMENTS_TAG: str(len(manifest.segments)),
                table.TABLE_SOURCES_TAG: str(manifest.source_count),
                "table_change": json.dumps(manifest.change, ensure_ascii=False)[:4000]}
        print(f"table: {name} version {manifest.version}: {manifest.file_count} files in {len(manifest.segments)} "
              f"segments, {manifest.source_count} workbooks, {manifest.rows} rows ({describe(manifest.change)})",
              flush=True)
        return self.context.register(Registration(
            name=name, datastore=self.datastore, relative_path=table.manifest_path(name, manifest.version),
            description=f"Table of the folder's workbooks, sheet '{tags.get('sheet', '')}' "
                        f"({manifest.source_count} workbooks)", tags=tags, files=tuple(manifest.patterns())))


def describe(change: dict[str, list[str]], shown: int = 5) -> str:
    """``added a.xlsx, b.xlsx; deleted c.xlsx``, naming at most ``shown`` blobs of each (a backfill's batch adds
    hundreds)."""
    return "; ".join(f"{what} {', '.join(blobs[:shown])}" + (f" and {len(blobs) - shown} more" if len(blobs) > shown
                                                              else "") for what, blobs in change.items())
