"""What a converted blob version registers: one dataset version per sheet, tagged with its source, schema and
schema change, and the converter's per-sheet results as metrics. The single step (``extract``) and the batch step
(``batch``) both register through here; only where the metrics go differs (the run's own, or the version's
outcome in a batch)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sheetdrop_contract.contract import BASE_TAG, Registration, sheet_dataset_name
from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_contract.table import table_name
from sheetdrop_step import schema_changes
from sheetdrop_step.contexts import StepContext
from sheetdrop_step.converter import CONVERTER_VERSION, Converted
from sheetdrop_step.tables import TableRun, without_source_columns

Metric = Callable[[str, Any], None]


def previous_types(context: StepContext, base: str) -> dict[str, dict[str, str]]:
    """By sheet name, the column types of the latest version of each dataset this workbook feeds."""
    found = {}
    for name in context.previous_names(base):
        tags = context.previous_tags(name) or {}
        schema = schema_changes.previous_schema(tags)
        if schema is not None and "sheet" in tags:
            # A table's schema holds the source columns, which no workbook has.
            found[tags["sheet"]] = without_source_columns(schema)
    return found


def register_sheets(context: StepContext, sheets: Converted, *, source: dict[str, str], dataset_name: str,
                    options: ReadOptions, outdir: Path, relative_dir: str, datastore: str, metric: Metric,
                    table: TableRun | None = None) -> list[str]:
    """Register each sheet (files under ``outdir``, at ``relative_dir`` on ``datastore``) and log what the
    converter found; return the references registered. Raises ``schema_changes.SchemaChanged`` (having deleted
    the sheets' files, registering nothing) when the folder's options say ``"schema_changes": "fail"``.

    In table mode (``table``, the folder says ``"versions": "table"``) each sheet becomes a file of the table
    ``<base>_<sheet>`` instead, compared with the table's columns (the union of its files'), and the run registers
    the tables once it has converted everything (:meth:`TableRun.commit`)."""
    source_name = source["source_blob"]
    planned = []
    changes: dict[str, str] = {}
    for sheet in sheets:
        name = table_name(dataset_name, sheet.slug) if table else \
            sheet_dataset_name(dataset_name, sheet.slug, len(sheets))
        previous = schema_changes.previous_schema(context.previous_tags(name) or {})
        previous = without_source_columns(previous) if previous is not None else None
        if previous is not None and schema_changes.compare(previous, sheet.column_types):
            changes[name] = schema_changes.compare(previous, sheet.column_types).describe()
        tags = {
            **source,
            "run_id": context.run_id,
            "sheet": sheet.sheet,
            "rows": str(sheet.rows),
            "columns": str(sheet.columns),
            "converter_version": CONVERTER_VERSION,
            # Which workbook-level name a sheet's dataset belongs to (contract.fed_by reads it).
            BASE_TAG: dataset_name,
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
    if table:
        table.converted(dataset_name, source)
    for sheet, name, tags in planned:
        file_path = sheet.path.relative_to(outdir).as_posix()
        if table:
            table.add(name, dataset_name, sheet.sheet, sheet.path, source, sheet.column_types, tags)
            registered.append(f"{name} (table: its version is registered at the run's end)")
        else:
            registered.append(context.register(Registration(
                name=name, datastore=datastore, relative_path=f"{relative_dir}/{file_path}",
                description=f"Sheet '{sheet.sheet}' of {source_name}", tags=tags,
            )))
        # The converter's per-column decisions, readable next to the run (studio / sheetdrop runs).
        metric(f"{file_path}:column_types", json.dumps(sheet.column_types, sort_keys=True))
        metric(f"{file_path}:error_cells", sheet.errors)
        metric(f"{file_path}:header", sheet.header)
        if sheet.warnings:
            metric(f"{file_path}:warnings", json.dumps(sheet.warnings, ensure_ascii=False))
        if sheet.rescued:
            metric(f"{file_path}:rescued_cells", json.dumps(sheet.rescued, sort_keys=True))
    for name, change in changes.items():
        print(f"warning: {name}: columns changed since its previous version: {change}", flush=True)
    if changes:
        metric("schema_changes", json.dumps(changes, sort_keys=True))
    gone = sorted(set(context.previous_names(dataset_name)) - {name for _, name, _ in planned})
    if gone and not table:  # in table mode the workbook's rows leave those tables (TableRun.commit)
        # A sheet removed from the workbook simply stops getting versions: say so.
        print(f"warning: no new version for {', '.join(gone)}: the workbook no longer has that sheet", flush=True)
        metric("datasets_without_new_version", ", ".join(gone))
    if sheets.skipped:
        metric("skipped_sheets", json.dumps(dict(sheets.skipped), ensure_ascii=False))
    metric("sheets", len(sheets))
    metric("rows", sum(sheet.rows for sheet in sheets))
    metric("columns", sum(sheet.columns for sheet in sheets))
    metric("parquet_bytes", sum(sheet.bytes for sheet in sheets))
    metric("null_cells", sum(sheet.nulls for sheet in sheets))
    metric("error_cells", sum(sheet.errors for sheet in sheets))
    return registered
