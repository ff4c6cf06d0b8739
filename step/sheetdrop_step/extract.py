"""The extract step: the blob version its run names in, parquet + registered datasets out.

A thin wrapper: arguments, the run context, the input (:mod:`source`, read by etag) and registration. The
conversion itself is :mod:`sheetdrop_step.converter`. Arguments, tags and settings follow :mod:`contract`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from sheetdrop_contract import read_options
from sheetdrop_contract.contract import (
    ARGUMENTS,
    BASE_TAG,
    EXIT_STORAGE_UNREACHABLE,
    OUTPUT_NAME,
    OUTPUT_PATH_PARAMETER,
    OutputPathError,
    Registration,
    StepSettingError,
    parse_source_version,
    parse_step_arguments,
    read_step_settings,
    sheet_dataset_name,
)
from sheetdrop_step import schema_changes, source
from sheetdrop_step.contexts import StepContext, get_context
from sheetdrop_step.converter import (
    CONVERTER_VERSION,
    ReaderKilled,
    WorkbookRejected,
    convert_workbook,
    options_from_env,
    staging_folder,
)


def _previous_types(context: StepContext, base: str) -> dict[str, dict[str, str]]:
    """By sheet name, the column types of the latest version of each dataset this workbook feeds."""
    found = {}
    for name in context.previous_names(base):
        tags = context.previous_tags(name) or {}
        schema = schema_changes.previous_schema(tags)
        if schema is not None and "sheet" in tags:
            found[tags["sheet"]] = schema
    return found


def run(args: argparse.Namespace, blob: dict[str, str], options: read_options.ReadOptions) -> int:
    started = time.monotonic()
    # First in the step's log: every argument as the step read it (decoded), so that a person, and `sheetdrop
    # smoke` (mount-layout), can see that each value reached the step as it was given, whatever the runtime did.
    print(f"arguments: {json.dumps(_arguments(args), ensure_ascii=False, sort_keys=True)}", flush=True)
    # The settings come on the command line (--setting), the platform's variables from the environment.
    context = get_context({**os.environ, **args.settings})
    context.start(blob)
    # AzureML does not create the output folder; the step has to.
    os.makedirs(args.output_extract, exist_ok=True)
    # v2: where the invocation put the output; v1: from the run. Never from the mount path.
    relative_dir = args.output_path.strip("/") if args.output_path else \
        context.output_path(OUTPUT_NAME, args.output_datastore)
    outdir = Path(args.output_extract)
    print(f"output: {outdir} is {args.output_datastore}:{relative_dir}", flush=True)

    source_name = blob["source_blob"]
    limits = options_from_env(args.settings)
    # In the step's log, so that a person can see which settings reached the step.
    print(f"settings: {json.dumps(read_step_settings(args.settings), sort_keys=True)}", flush=True)
    if options.file:
        print(f"read options: {options.file}", flush=True)
    previous = _previous_types(context, args.dataset_name) if options.schema_changes == "rescue" else {}
    # The copy of the blob goes into a staging folder too: if the step is killed, the next conversion on the
    # machine removes it (a workbook of up to SHEETDROP_MAX_FILE_MB left per kill otherwise).
    with staging_folder() as folder:
        try:
            workbook = source.fetch(args.input_account, context.storage_credential(), blob, folder,
                                    context.storage_retries)
            print(f"input: read {blob['source_container']}/{source_name} at etag {blob['source_etag']} "
                  f"({workbook.stat().st_size} bytes)", flush=True)
        except source.Superseded as replaced:
            # Not an error: the newer version has its own run. This one converts and registers nothing.
            print(f"superseded: {blob['source_container']}/{source_name} is no longer etag {blob['source_etag']} "
                  f"but {replaced.newer_etag}; the run of that version converts it", flush=True)
            context.superseded(replaced.newer_etag)
            return 0
        sheets = convert_workbook(workbook, outdir, source=source_name, options=options, previous=previous,
                                  **limits)
    planned = []
    changes: dict[str, str] = {}
    for sheet in sheets:
        name = sheet_dataset_name(args.dataset_name, sheet.slug, len(sheets))
        previous = schema_changes.previous_schema(context.previous_tags(name) or {})
        if previous is not None and schema_changes.compare(previous, sheet.column_types):
            changes[name] = schema_changes.compare(previous, sheet.column_types).describe()
        tags = {
            **blob,
            "run_id": context.run_id,
            "sheet": sheet.sheet,
            "rows": str(sheet.rows),
            "columns": str(sheet.columns),
            "converter_version": CONVERTER_VERSION,
            # Which workbook-level name a sheet's dataset belongs to (contract.fed_by reads it).
            BASE_TAG: args.dataset_name,
            **schema_changes.schema_tags(sheet.column_types, previous),
        }
        planned.append((sheet, name, tags))
    if changes and options.schema_changes == "fail":
        for sheet in sheets:  # no new version, and nothing left for one
            sheet.path.unlink(missing_ok=True)
        raise schema_changes.SchemaChanged(
            f"{'; '.join(f'{name}: {change}' for name, change in changes.items())} (the folder's options say "
            "\"schema_changes\": \"fail\"; change them to \"evolve\" to accept the new columns)")
    registered = []
    for sheet, name, tags in planned:
        file_path = sheet.path.relative_to(outdir).as_posix()
        registered.append(context.register(Registration(
            name=name, datastore=args.output_datastore, relative_path=f"{relative_dir}/{file_path}",
            description=f"Sheet '{sheet.sheet}' of {source_name}", tags=tags,
        )))
        # The converter's per-column decisions, readable next to the run (studio / sheetdrop runs).
        context.log_metric(f"{file_path}:column_types", json.dumps(sheet.column_types, sort_keys=True))
        context.log_metric(f"{file_path}:error_cells", sheet.errors)
        context.log_metric(f"{file_path}:header", sheet.header)
        if sheet.warnings:
            context.log_metric(f"{file_path}:warnings", json.dumps(sheet.warnings, ensure_ascii=False))
        if sheet.rescued:
            context.log_metric(f"{file_path}:rescued_cells", json.dumps(sheet.rescued, sort_keys=True))
    for name, change in changes.items():
        print(f"warning: {name}: columns changed since its previous version: {change}", flush=True)
    if changes:
        context.log_metric("schema_changes", json.dumps(changes, sort_keys=True))
    gone = sorted(set(context.previous_names(args.dataset_name)) - {name for _, name, _ in planned})
    if gone:
        # A sheet removed from the workbook simply stops getting versions: say so.
        print(f"warning: no new version for {', '.join(gone)}: the workbook no longer has that sheet", flush=True)
        context.log_metric("datasets_without_new_version", ", ".join(gone))
    if sheets.skipped:
        context.log_metric("skipped_sheets", json.dumps(dict(sheets.skipped), ensure_ascii=False))
    total_sheets = len(sheets)
    total_rows = sum(sheet.rows for sheet in sheets)
    total_columns = sum(sheet.columns for sheet in sheets)
    total_bytes = sum(sheet.bytes for sheet in sheets)
    total_nulls = sum(sheet.nulls for sheet in sheets)
    total_errors = sum(sheet.errors for sheet in sheets)
    context.log_metric("sheets", total_sheets)
    context.log_metric("rows", total_rows)
    context.log_metric("columns", total_columns)
    context.log_metric("parquet_bytes", total_bytes)
    context.log_metric("null_cells", total_nulls)
    context.log_metric("error_cells", total_errors)
    seconds = round(time.monotonic() - started, 3)
    context.log_metric("seconds", seconds)
    context.complete()
    # The step's own time, beside the run's (`sheetdrop smoke` reports the time outside it: per-run-overhead).
    print(f"converted: {total_sheets} sheets, {total_rows} rows in {seconds:.3f} s", flush=True)
    for ref in registered:
        print(f"dataset: {ref}")
    return 0


def _arguments(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name) for name in (*ARGUMENTS, OUTPUT_PATH_PARAMETER)}


def main(argv: list[str] | None = None) -> int:
    # The converter's notes (a sheet skipped and why) belong in the step's log, as `python -m sheetdrop_step` prints
    # them; only ours: in AzureML the SDK's own INFO logging would drown them.
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("sheetdrop").addHandler(notes)
    logging.getLogger("sheetdrop").setLevel(logging.INFO)
    try:
        args = parse_step_arguments(argv)
        blob = parse_source_version(args.source_version)
        if not blob:
            raise ValueError("--source_version names no blob version")
    except StepSettingError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"error: arguments: {exc}", file=sys.stderr)
        return 3
    try:
        options = read_options.from_parameter(args.read_options)
    except read_options.OptionsError as exc:
        # Before anything is converted: fixing the file and uploading the workbook again is new work.
        print(f"error: options: {exc}", file=sys.stderr)
        return 3
    try:
        return run(args, blob, options)
    except source.InputGone as exc:
        print(f"error: input-gone: {exc}; upload it again to convert it", file=sys.stderr)
        return 2
    except source.InputUnreachable as exc:
        print(f"error: storage-unreachable: {exc}", file=sys.stderr)
        return EXIT_STORAGE_UNREACHABLE
    except WorkbookRejected as exc:
        print(f"error: {exc.code}: {exc.reason}", file=sys.stderr)
        return 2
    except ReaderKilled as exc:
        # Not the workbook's doing: the step ends as if it had been killed itself, which its runner retries.
        print(f"warning: {exc}", file=sys.stderr)
        exc.end_like_the_reader()
        return 4
    except OutputPathError as exc:
        print(f"error: output-path: {exc}", file=sys.stderr)
        return 3
    except StepSettingError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 3
    except schema_changes.SchemaChanged as exc:
        print(f"error: schema: {exc}", file=sys.stderr)
        return 2

