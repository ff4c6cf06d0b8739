"""The extract step: the blob version its run names in, parquet + registered datasets out; or, given a manifest,
the batch step (:mod:`sheetdrop_step.batch`: many pinned versions, one outcome each).

A thin wrapper: arguments, the run context, the input (:mod:`source`, read by etag) and registration
(:mod:`sheetdrop_step.registration`). The conversion itself is :mod:`sheetdrop_step.converter`. Arguments, tags and
settings follow :mod:`contract` (the batch's, ``sheetdrop_contract.batch``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sheetdrop_contract import batch as batch_contract
from sheetdrop_contract import read_options
from sheetdrop_contract import table as table_contract
from sheetdrop_contract.contract import (
    ARGUMENTS,
    EXIT_STORAGE_UNREACHABLE,
    OUTPUT_NAME,
    OUTPUT_PATH_PARAMETER,
    OutputPathError,
    StepSettingError,
    parse_source_version,
    parse_step_arguments,
    read_step_settings,
)
from sheetdrop_step import batch, schema_changes, source
from sheetdrop_step.contexts import StepContext, get_context
from sheetdrop_step.converter import (
    ReaderKilled,
    SheetOutput,
    WorkbookRejected,
    convert_workbook,
    options_from_env,
    staging_folder,
)
from sheetdrop_step.registration import previous_types, register_sheets
from sheetdrop_step.tables import TableRun


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
    previous = previous_types(context, args.dataset_name) if options.schema_changes == "rescue" else {}
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
        except source.InputGone as gone:
            if not options.table:
                raise
            # A table-mode folder's workbook deleted (the timer's sweep runs its last version again for this:
            # function/sheetdrop/deletions.py): the folder's tables, committed without it, are the run's work.
            print(f"input: {blob['source_container']}/{source_name} is gone ({gone}): the folder's tables are "
                  "committed without it", flush=True)
            table = TableRun(context, args.output_datastore, args.input_account, outdir, relative_dir)
            table.deleted(args.dataset_name, blob["source_container"])
            return _ended(context, started, [], table.commit())
        sheets = convert_workbook(workbook, outdir, source=source_name, options=options, previous=previous,
                                  **limits)
    # Table mode: the sheets become files of the folder's tables, registered once everything is converted.
    table = TableRun(context, args.output_datastore, args.input_account, outdir, relative_dir) \
        if options.table else None
    registered = register_sheets(context, sheets, source=blob, dataset_name=args.dataset_name, options=options,
                                 outdir=outdir, relative_dir=relative_dir, datastore=args.output_datastore,
                                 metric=context.log_metric, table=table)
    if table:
        registered = table.commit()
    return _ended(context, started, sheets, registered)


def _ended(context: StepContext, started: float, sheets: list[SheetOutput], registered: list[str]) -> int:
    seconds = round(time.monotonic() - started, 3)
    context.log_metric("seconds", seconds)
    context.complete()
    # The step's own time, beside the run's (`sheetdrop smoke` reports the time outside it: per-run-overhead).
    print(f"converted: {len(sheets)} sheets, {sum(sheet.rows for sheet in sheets)} rows in {seconds:.3f} s",
          flush=True)
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
        versions = batch_contract.parse_manifest(args.manifest) if args.manifest else []
        blob = parse_source_version(args.source_version)
        if not blob and not versions:
            raise ValueError("--source_version names no blob version")
    except StepSettingError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"error: arguments: {exc}", file=sys.stderr)
        return 3
    if versions:
        # A batch: each version's options, reading and rejection are its own (sheetdrop_step.batch).
        return _failing(lambda: batch.run(args, versions))
    try:
        options = read_options.from_parameter(args.read_options)
    except read_options.OptionsError as exc:
        # Before anything is converted: fixing the file and uploading the workbook again is new work.
        print(f"error: options: {exc}", file=sys.stderr)
        return 3
    return _failing(lambda: run(args, blob, options))


def _failing(step: Callable[[], int]) -> int:
    """The step's exit code: its own, or the one its error line says (the line is the run's reason)."""
    try:
        return step()
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
    except table_contract.TableTooLarge as exc:
        print(f"error: table-too-large: {exc}", file=sys.stderr)
        return 2

