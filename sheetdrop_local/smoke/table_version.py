"""The ``table-version`` item, the same for both backends: a folder in table mode (README, "A folder as one table")
gets two smoke workbooks, one run each, and the second run's registration must be a table version over segment
globs whose manifest, segment descriptions and parquet files the signed-in identity reads back with both workbooks'
rows. What only a real workspace settles there (docs/azureml.md and docs/azureml-v2.md, "A folder as one table"):
that the cluster's identity may write segments and manifests to the workspace storage (the step's commit), and that
the service takes a registration over globs (v1 a tabular dataset of ``pattern`` paths, v2 an mltable asset)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from sheetdrop_contract import contract, table
from sheetdrop_local.smoke.facts import REFUSED, Dataset, Item, Observed, SmokeFailure
from sheetdrop_local.smoke.workbook import SHEET

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from sheetdrop_local.smoke.facts import Context

KEY = "table-version"
#: A folder of its own: its sheetdrop.json must not turn the per-file smoke folder into a table.
FOLDER = "sheetdrop_smoke_table"
OPTIONS_BLOB = f"{FOLDER}/sheetdrop.json"
OPTIONS = b'{"versions": "table"}'
#: Two workbooks one after the other: the second run's version must hold the first one's rows too.
LABELS = ("t1", "t2")
#: The table the smoke sheet feeds (sheetdrop_contract.table.table_name: always ``<folder>_<sheet>``).
DATASET = table.table_name(FOLDER, contract.slug(SHEET, "sheet"))


def blob_name(stamp: str, label: str) -> str:
    return f"{FOLDER}/{stamp}-{label}.xlsx"


def decide(ctx: Context, checks: Any, seen: list[Observed]) -> Item:
    """Confirmed when the last run completed and registered a table version over segment globs, and the version's
    manifest, segments and parquet, read back as the signed-in identity, hold every workbook's rows."""
    last = seen[-1]
    if last.status != "Completed":
        return Item(KEY, False, f"the {last.label} run {last.run_id} ended {last.status or '?'}{_refusal(last)}; "
                    f"next: read its step's log in AzureML studio: a 403 writing tables/{DATASET}/ means the "
                    "cluster's identity lacks Storage Blob Data Contributor on the workspace storage (infra/app/"
                    "rbac.bicep, computeOutputContributor; a new assignment takes minutes)")
    found = [d for d in last.datasets if d.ref.rpartition(":")[0] == DATASET]
    if not found or table.TABLE_VERSION_TAG not in found[0].tags:
        registered = ", ".join(f"{d.ref} (tags {', '.join(sorted(d.tags)) or 'none'})" for d in last.datasets)
        return Item(KEY, False, f"the {last.label} run {last.run_id} completed but registered no table version of "
                    f"{DATASET} (registered: {registered or 'nothing'}){_refusal(last)}; next: check that "
                    f"{OPTIONS_BLOB} says {OPTIONS.decode()} and read the step's 'table:' lines in its log")
    dataset = found[0]
    version = dataset.tags[table.TABLE_VERSION_TAG]
    segments_root = f"{table.TABLES_ROOT}/{DATASET}/{table.SEGMENTS}/"
    astray = [p for p in dataset.paths if not (p.startswith(segments_root) and p.endswith("/*.parquet"))]
    if not dataset.paths or astray:
        return Item(KEY, False, f"{dataset.ref} (table_version {version}) is registered over "
                    f"{', '.join(dataset.paths) or 'no path'}, not globs under {segments_root}; next: compare its "
                    "definition in AzureML studio with the step's registration (step/sheetdrop_step/contexts)")
    try:
        held = read_version(ctx, checks, dataset, int(version), {one.blob for one in seen})
    except SmokeFailure as exc:
        return Item(KEY, False, str(exc))
    manifest, files, rows, markers, blobs = held
    problems = []
    if set(manifest.patterns()) != set(dataset.paths):
        problems.append(f"the manifest's segments are {manifest.patterns()}, the registration's globs "
                        f"{dataset.paths}")
    wanted = {one.seen["marker"] for one in seen}
    if not wanted <= markers:
        problems.append(f"its rows lack the markers {sorted(wanted - markers)}")
    if not {one.blob for one in seen} <= blobs:
        problems.append(f"its {table.SOURCE_BLOB_COLUMN} column lacks {sorted({o.blob for o in seen} - blobs)}")
    evidence = (f"{dataset.ref} is table_version {version} over {len(dataset.paths)} segment globs "
                f"({', '.join(dataset.paths)}); read back {table.manifest_path(DATASET, int(version))}: "
                f"{len(manifest.segments)} segments, {manifest.file_count} files, {manifest.rows} rows; the "
                f"{files} files holding this run's workbooks: {rows} rows from {', '.join(sorted(blobs))}, markers "
                f"{', '.join(sorted(markers))}")
    if problems:
        return Item(KEY, False, "; ".join(problems) + f"; {evidence}; next: compare the manifest with the step's "
                    "'table:' lines in both runs' logs")
    return Item(KEY, True, evidence)


def _refusal(seen: Observed) -> str:
    refused = next((line.strip() for line in seen.log.splitlines() if REFUSED.search(line)), "")
    return f"; its step log says {refused[:300]!r}" if refused else ""


def read_version(ctx: Context, checks: Any, dataset: Dataset, version: int,
                 ours: set[str]) -> tuple[table.Manifest, int, int, set[str], set[str]]:
    """The manifest, each segment's description and the parquet files they say hold ``ours`` (this run's workbooks:
    the table also holds earlier smoke runs' that were not cleaned, which need no reading), from the workspace storage
    as the signed-in identity: (manifest, files read, their rows, markers, source blobs)."""
    import pyarrow.parquet as pq
    from azure.core.exceptions import HttpResponseError

    container = workspace_container(ctx, checks, dataset.datastore)

    def read(path: str) -> bytes:
        try:
            return container.get_blob_client(path).download_blob().readall()
        except HttpResponseError as exc:
            next_step = ("the signed-in identity needs Storage Blob Data Reader on the workspace storage "
                         "(infra/app/rbac.bicep gives it to whoever runs `azd up`)" if exc.status_code == 403 else
                         "the step's commit did not write it: read the step's 'table:' lines in its log")
            raise SmokeFailure(f"{dataset.ref}: reading {container.container_name}/{path} answered HTTP "
                               f"{exc.status_code} {exc.error_code or ''}; next: {next_step}") from exc

    try:
        manifest = table.Manifest.from_text(read(table.manifest_path(DATASET, version)))
        segments = table.segments_of(manifest, read)
    except (ValueError, KeyError, TypeError) as exc:  # not the manifest or segment description the step writes
        raise SmokeFailure(f"{dataset.ref}: its manifest or a segment description is not readable as "
                           f"sheetdrop_contract.table writes it: {exc}") from exc
    files = rows = 0
    markers: set[str] = set()
    blobs: set[str] = set()
    for segment in segments:
        for described in segment.files:
            if not described.blobs() & ours:
                continue
            try:
                data = pq.read_table(io.BytesIO(read(described.path)))
            except ValueError as exc:  # pyarrow's ArrowInvalid: not a parquet file
                raise SmokeFailure(f"{dataset.ref}: {described.path}, listed by segment {segment.id}, is not "
                                   f"readable as parquet: {exc}; next: compare it with the step's 'table:' lines "
                                   "in its log") from exc
            files, rows = files + 1, rows + data.num_rows
            markers |= {str(v) for v in data.column("marker").to_pylist()} if "marker" in data.column_names else set()
            if table.SOURCE_BLOB_COLUMN in data.column_names:
                blobs |= {str(v) for v in data.column(table.SOURCE_BLOB_COLUMN).to_pylist()}
    return manifest, files, rows, markers, blobs


def workspace_container(ctx: Context, checks: Any, datastore: str) -> ContainerClient:
    """The datastore's container on the workspace storage, as the signed-in identity."""
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import ContainerClient

    account, container = checks.container(datastore)
    endpoint = (ctx.values.get("AZUREML_STORAGE_BLOB_ENDPOINT") or "").rstrip("/")
    if not endpoint:
        raise SmokeFailure("the azd environment has no AZUREML_STORAGE_BLOB_ENDPOINT (the workspace storage): "
                           "next: `azd provision` with this checkout's infra/")
    if account and account not in endpoint:
        raise SmokeFailure(f"datastore {datastore} is on account {account}, not the workspace storage {endpoint}")
    return ContainerClient(endpoint, container, credential=DefaultAzureCredential())

