"""The ``sheetdrop`` commands that look: ``runs``, ``runs show``, ``logs``, ``datasets``, ``show``.

What they print comes from the read model (:mod:`sheetdrop_local.readmodel`), which the studio
shows too; how it is printed (tables, text, JSON) is here. Storage is read through a client that
fails at once when storage is down (``locations.quick_service``). A run is named by its id, the
characters the tables show, or ``latest``. Exit codes: 0 ok; 1 not found, a failed run, or storage
unreachable; 2 a usage or settings error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sheetdrop.storage import one_line
from sheetdrop_local import db, registry, runstore, textfit
from sheetdrop_local.readmodel import datasets, locations, runs, tables
from sheetdrop_local.readmodel.labels import ref, short, when
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from sheetdrop_local.readmodel.rundetail import RunDetail
    from sheetdrop_local.registry import DatasetVersion


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], **fit: Sequence[str]) -> str:
    """A table in the terminal's width (textfit); the full text is in ``--json``."""
    return textfit.table(rows, columns, textfit.terminal_width(), **fit)


def cmd_runs(args: argparse.Namespace, settings: LocalSettings) -> int:
    if getattr(args, "runs_command", None) == "show":
        return cmd_run_show(args, settings)
    try:
        since = runs.parse_time(args.since) if args.since else None
        until = runs.parse_time(args.until, end=True) if args.until else None
    except ValueError:
        print("error: usage: --since and --until take a date (2026-10-01) or a time (2026-10-01T09:30) in UTC",
              file=sys.stderr)
        return 2
    conn = db.connect(settings.state_dir)
    batch = runs.find_batch(conn, args.batch).run_id if getattr(args, "batch", None) else None
    found = runs.activity(conn, settings, locations.quick_service(settings), limit=args.limit, status=args.status,
                          dataset=args.dataset, blob=args.blob, since=since, until=until,
                          offset=(args.page - 1) * args.limit, batch=batch)
    if args.json:
        print(json.dumps([_entry_json(e) for e in found.entries], indent=2, sort_keys=True))
        return 0
    if found.note:
        print(f"note: {found.note}", file=sys.stderr)
    if found.total > len(found.entries):
        last = found.offset + len(found.entries)
        print(f"rows {found.offset + 1 if found.entries else 0}-{last} of {found.total}"
              + (f"; --page {args.page + 1} for more" if last < found.total else ""), file=sys.stderr)
    print(table([_row(e) for e in found.entries], ["run", "status", "blob", "etag", "datasets", "submitted",
                                                   "seconds", "sheets", "rows", "reason"],
                keep=("run", "status"), optional=("etag", "seconds", "sheets", "rows", "submitted")))
    return 0


def _row(e: runs.Entry) -> dict[str, Any]:
    return {
        "run": short(e.run_id), "status": e.status, "etag": e.etag,
        # A batch run: its versions are listed by `sheetdrop runs --batch RUN`.
        "blob": f"batch of {e.batch.versions} versions" if e.batch else f"{e.container}/{e.blob}",
        "datasets": ", ".join(ref(v) for v in e.outputs), "submitted": when(e.at),
        "seconds": f"{e.seconds:.1f}" if e.seconds is not None else "",
        "sheets": e.metric("sheets"), "rows": e.metric("rows"), "reason": _reason(e.reason, e.newer),
    }


def _reason(reason: str | None, newer: runs.Newer | None) -> str:
    """A superseded run's reason names the newer version's run, once it has one."""
    if newer is None:
        return reason or ""
    return f"superseded by etag {newer.etag}: " + (f"run {short(newer.run_id)}" if newer.run_id else "no run yet")


def _newer_json(newer: runs.Newer | None) -> dict[str, Any]:
    return {"superseded_by": {"etag": newer.etag, "run_id": newer.run_id}} if newer else {}


def _entry_json(entry: runs.Entry) -> dict[str, Any]:
    if entry.run is not None:
        batch = {"batch": {"versions": entry.batch.versions, "outcomes": entry.batch.counts}} if entry.batch else {}
        return {**entry.run.as_dict(), "datasets": [ref(v) for v in entry.outputs], **_newer_json(entry.newer),
                **batch}
    return {"run_id": None, "status": entry.status, "source_container": entry.container, "source_blob": entry.blob,
            "source_etag": entry.etag, "submitted_at": entry.at, "error": entry.reason, "datasets": []}


def cmd_run_show(args: argparse.Namespace, settings: LocalSettings) -> int:
    from sheetdrop_local.readmodel.rundetail import run_detail

    conn = db.connect(settings.state_dir)
    run = runs.find_run(conn, args.run)
    detail = run_detail(conn, settings, run, locations.quick_service(settings))
    if args.json:
        print(json.dumps(_detail_json(detail, settings), indent=2, sort_keys=True, default=str))
    else:
        print(textfit.lines(_detail_text(detail, settings), textfit.terminal_width()))
    return 1 if run.status == runstore.RunStatus.FAILED else 0


def _detail_json(detail: RunDetail, settings: LocalSettings) -> dict[str, Any]:
    return {
        "run": detail.run.as_dict(), **_newer_json(detail.newer), "parameters": detail.parameters,
        "step_settings": detail.step_settings,
        "read_options": detail.options.__dict__ if detail.options else None,
        "later_run": detail.later.run_id if detail.later else None,
        "metrics": detail.metrics, "warnings": detail.warnings,
        "skipped_sheets": [{"sheet": s, "reason": why} for s, why in detail.skipped_sheets],
        "sheets": [{"sheet": s.sheet, "file": s.file, "dataset": ref(s.dataset) if s.dataset else None,
                    "rows": s.rows, "nulls": s.nulls, "errors": s.errors, "warnings": s.warnings,
                    "columns": [c.__dict__ for c in s.columns], "metrics": s.metrics, "note": s.note}
                   for s in detail.sheets],
        "outputs": [_version_json(v, settings) for v in detail.outputs],
        **({"versions": [_entry_json(e) for e in detail.versions]} if detail.counts else {}),
        **({"batch_run_id": detail.batch.run_id} if detail.batch else {}),
    }


def _version_json(version: DatasetVersion, settings: LocalSettings) -> dict[str, Any]:
    """A version as ``datasets --json`` and ``runs show --json`` print it, with the container that plays
    its datastore."""
    return {**version.as_dict(), "container": settings.local_container_for(version.datastore)}


def _pairs(values: dict[str, Any]) -> list[str]:
    width = max((len(k) for k in values), default=0)
    return [f"  {k.ljust(width)}  {v}" for k, v in values.items()] or ["  (none)"]


def _detail_text(detail: RunDetail, settings: LocalSettings) -> str:
    run = detail.run
    took = f" ({run.seconds:.1f} s)" if run.seconds is not None else ""
    what = f"  batch       {detail.counts.versions} versions: {detail.counts.describe()}" if detail.counts else \
        f"  blob        {run.source_container}/{run.source_blob} (etag {run.source_etag})"
    lines = [
        f"run {run.run_id}: {run.status}",
        what,
        f"  submitted   {when(run.submitted_at)}   started {when(run.started_at) or '-'}   "
        f"finished {when(run.ended_at) or '-'}{took}",
        f"  experiment  {run.experiment}, attempt {run.attempts}",
    ]
    if run.step_run_id:
        lines.append(f"  step run    {run.step_run_id} (its output: {settings.output_datastore}/"
                     f"azureml/{run.step_run_id}/extracted, container {settings.local_output_container})")
    if run.error:
        lines.append(f"  reason      {run.error}")
    if detail.newer:
        newer = detail.newer
        lines.append(f"  superseded  by etag {newer.etag}: " + (
            f"run {newer.run_id} (`sheetdrop runs show {short(newer.run_id)}`)" if newer.run_id else
            "its run is not submitted yet"))
    if detail.batch:
        lines.append(f"  in batch    {detail.batch.run_id} (version {run.batch_position}; "
                     f"`sheetdrop runs --batch {short(detail.batch.run_id)}`)")
    if detail.later:
        later = detail.later
        lines.append(f"  later run   {short(later.run_id)} completed, submitted {when(later.submitted_at)} "
                     f"(etag {later.source_etag})")
    lines.append(f"  log         `sheetdrop logs {short(run.run_id)}`")
    lines += ["", "parameters", *_pairs(detail.parameters)]
    if detail.options:
        lines += ["", f"read options ({detail.options.file})",
                  *(f"  {line}" for line in detail.options.text.split("\n"))]
    lines += ["", "tags", *_pairs(run.tags)]
    if detail.step_settings:
        lines += ["", "step settings", *_pairs(detail.step_settings)]
    if detail.counts:
        lines += ["", "versions", table([{"version": e.run.batch_position if e.run else "", **_row(e)}
                                         for e in detail.versions],
                                        ["version", "run", "status", "blob", "etag", "datasets", "reason"])]
    if detail.sheets:
        lines += ["", "sheets", table([{
            "sheet": s.sheet, "dataset": ref(s.dataset) if s.dataset else "", "rows": s.rows,
            "columns": len(s.columns) or None, "nulls": s.nulls, "errors": s.errors,
            "warnings": "; ".join(s.warnings), "file": s.file} for s in detail.sheets],
            ["sheet", "dataset", "rows", "columns", "nulls", "errors", "warnings", "file"])]
        for s in detail.sheets:
            if s.note:
                lines += ["", f"columns of {s.sheet}: {s.note}"]
            elif s.columns:
                lines += ["", f"columns of {s.sheet}", table([c.__dict__ | {"type": c.type} for c in s.columns],
                                                             ["name", "type", "nulls", "errors"])]
    if detail.skipped_sheets:
        lines += ["", "skipped sheets", *(f"  {sheet!r}: {why}" for sheet, why in detail.skipped_sheets)]
    if detail.warnings:
        lines += ["", "warnings", *(f"  {w}" for w in detail.warnings)]
    lines += ["", "metrics", *_pairs(detail.metrics)]
    lines += ["", "outputs (dataset versions)", table([{
        "dataset": ref(v), "datastore": v.datastore, "path": locations.blob_path(settings, v)} for v in detail.outputs],
        ["dataset", "datastore", "path"])]
    return "\n".join(lines)


def cmd_logs(args: argparse.Namespace, settings: LocalSettings) -> int:
    conn = db.connect(settings.state_dir)
    run = runs.find_run(conn, args.run)
    printed = 0
    while True:
        text = runs.step_log(settings, run) or ""
        sys.stdout.write(text[printed:])
        sys.stdout.flush()
        printed = len(text)
        if not args.follow or run.status in runstore.ENDED:
            break
        time.sleep(0.5)
        run = runstore.get(conn, run.run_id) or run
    if not printed and run.status not in runstore.ENDED:
        print(f"(run {short(run.run_id)} is {run.status}; its step has not written a log yet)", file=sys.stderr)
    if run.status == runstore.RunStatus.FAILED:
        print(f"run {short(run.run_id)} failed: {run.error}", file=sys.stderr)
        return 1
    return 0


def cmd_datasets(args: argparse.Namespace, settings: LocalSettings) -> int:
    versions = registry.list_versions(db.connect(settings.state_dir), args.name)
    if args.name and not versions:
        raise registry.DatasetNotFound(f"no dataset {args.name!r} (see `sheetdrop datasets`)")
    if args.json:
        print(json.dumps([_version_json(v, settings) for v in versions], indent=2, sort_keys=True))
        return 0
    rows = [{
        "name": v.name, "version": v.version, "run": short(v.run_id), "rows": v.tags.get("rows", ""),
        "columns": v.tags.get("columns", ""), "sheet": v.tags.get("sheet", ""), "source": v.tags.get("source_blob", ""),
        "created": when(v.created_at), "schema_change": v.tags.get("schema_change", ""),
        "path": locations.blob_path(settings, v),
    } for v in versions]
    print(table(rows, ["name", "version", "run", "rows", "columns", "sheet", "source", "created", "schema_change",
                       "path"], keep=("name", "version", "run"),
                optional=("path", "created", "columns", "sheet", "rows", "schema_change")))
    for datastore in sorted({v.datastore for v in versions}):
        print("\n" + textfit.wrap(f"paths are in the storage container {settings.local_container_for(datastore)}, "
                                  f"which plays the datastore {datastore} here", textfit.terminal_width()))
    return 0


def cmd_show(args: argparse.Namespace, settings: LocalSettings) -> int:
    from azure.core.exceptions import ResourceNotFoundError

    from sheetdrop_local.readmodel import parquetview

    try:
        version = datasets.resolve_version(db.connect(settings.state_dir), args.dataset)
    except ValueError as exc:
        print(f"error: usage: {exc}", file=sys.stderr)
        return 2
    service = locations.quick_service(settings)
    where = locations.location(settings, version, service)
    if tables.is_table(version):
        return _show_table(args, version, service.get_container_client(where.container), where)
    try:
        parquet, _ = parquetview.open_parquet(service.get_blob_client(where.container, where.path))
        # Whole numbers stay whole where a column has nulls (pandas would make the column float).
        data = parquetview.head(parquet, args.head).to_pandas(integer_object_nulls=True)
    except ResourceNotFoundError:
        print(f"error: not-found: {ref(version)} is registered, but its parquet {where.blob_path} is not in storage",
              file=sys.stderr)
        return 1
    if args.format == "csv":
        sys.stdout.write(data.to_csv(index=False))
    elif args.format == "json":
        print(data.to_json(orient="records", date_format="iso", force_ascii=False))
    else:
        shown = "" if len(data) == parquet.metadata.num_rows else f" (first {len(data)})"
        print(f"{ref(version)} (run {short(version.run_id)}): {parquet.metadata.num_rows} rows{shown}, "
              f"{parquet.metadata.num_columns} columns")
        print(f"stored at {where.blob_path} (datastore {where.datastore})")
        print(data.to_string(index=False, na_rep="null"))
    return 0


def _show_table(args: argparse.Namespace, version: DatasetVersion, container: ContainerClient,
                where: locations.Location) -> int:
    """A table version as one table: its files' rows under the table's schema, read up to the rows shown."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        read = tables.read(container, version, args.head)
    except ResourceNotFoundError as exc:
        print(f"error: not-found: {ref(version)} is registered, but a file of it is not in storage ({one_line(exc)})",
              file=sys.stderr)
        return 1
    data = read.data.to_pandas(integer_object_nulls=True)
    if args.format == "csv":
        sys.stdout.write(data.to_csv(index=False))
    elif args.format == "json":
        print(data.to_json(orient="records", date_format="iso", force_ascii=False))
    else:
        found = read.manifest
        shown = "" if len(data) == found.rows else f" (first {len(data)})"
        print(f"{ref(version)} (run {short(version.run_id)}): table version {found.version} of {found.source_count} "
              f"workbooks in {found.file_count} files ({len(found.segments)} segments): {found.rows} rows{shown}, "
              f"{len(found.schema)} columns")
        print(f"manifest at {where.blob_path} (datastore {where.datastore})")
        print(data.to_string(index=False, na_rep="null"))
    return 0
