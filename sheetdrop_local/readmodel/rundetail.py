"""One run as the studio and ``sheetdrop runs show`` show it: parameters and tags, the step's log, a
table per sheet, metrics, and the dataset versions it registered — the lineage blob → run → dataset
versions in one object.

Built from what the run left: its run store row, its metrics (the step's ``log_metric``), its
registrations, its log (a skipped sheet is a line there), and each output's parquet footer (the
converter's per-column null and error counts). Metrics and tags this code does not know are shown
as they are, so a newer step that logs more needs no change here.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import sqlite3
from dataclasses import dataclass, field
from posixpath import basename
from typing import TYPE_CHECKING, Any

from sheetdrop.storage import storage_unreachable
from sheetdrop_contract import contract
from sheetdrop_local import registry, runstore
from sheetdrop_local.readmodel import parquetview
from sheetdrop_local.readmodel.locations import location, storage_endpoint
from sheetdrop_local.readmodel.runs import Newer, newer_version, step_log
from sheetdrop_local.registry import DatasetVersion
from sheetdrop_local.runstore import Run, RunStatus
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

#: What the converter logs for a sheet it did not convert (convert.py: "skipped sheet %r of %s: %s").
SKIPPED_SHEET = re.compile(r"^skipped sheet (?P<sheet>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") of .*: (?P<why>[^:]+)$")
WARNING_LINE = re.compile(r"^(warning|warn)\b[:\s]", re.IGNORECASE)


@dataclass
class Sheet:
    """One converted sheet: its output file, the dataset version registered for it, and its columns."""

    file: str
    sheet: str
    dataset: DatasetVersion | None
    rows: int | None = None
    columns: list[parquetview.Column] = field(default_factory=list)
    #: Per-sheet metrics (``<file>:<name>``) by name, as logged.
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: Why the parquet could not be read, if it could not.
    note: str | None = None

    @property
    def nulls(self) -> int | None:
        counts = [c.nulls for c in self.columns if c.nulls is not None]
        return sum(counts) if counts else None

    @property
    def errors(self) -> int | None:
        counts = [c.errors for c in self.columns if c.errors is not None]
        if counts:
            return sum(counts)
        value = self.metrics.get("error_cells")
        return int(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class OptionsShown:
    """The folder's read options a run was given, to read: the file's name and its JSON, indented
    (as written when it is not JSON)."""

    file: str
    text: str


def options_shown(run: Run) -> OptionsShown | None:
    try:
        data = json.loads(run.read_options or "{}")
    except ValueError:
        return OptionsShown("(not JSON)", run.read_options)
    if not isinstance(data, dict) or not data.get("file"):
        return None
    text = str(data.get("text") or "")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text.removeprefix("\ufeff")), indent=2, ensure_ascii=False)
    return OptionsShown(str(data["file"]), text)


@dataclass
class RunDetail:
    run: Run
    parameters: dict[str, str]
    #: The step's own settings as it printed them (``settings: {...}`` in its log).
    step_settings: dict[str, Any]
    sheets: list[Sheet]
    skipped_sheets: list[tuple[str, str]]
    warnings: list[str]
    #: Run-level metrics (the per-sheet ones are in ``sheets``).
    metrics: dict[str, Any]
    outputs: list[DatasetVersion]
    log: str | None
    #: A superseded run: the version that replaced its own, and that version's run.
    newer: Newer | None = None
    options: OptionsShown | None = None
    #: For a failed run: the first run of the same blob after it that completed.
    later: Run | None = None


def parameters(run: Run, settings: LocalSettings) -> dict[str, str]:
    """The pipeline parameters the run was submitted with, as AzureML studio lists them."""
    values = {
        contract.DATASET_NAME_PARAMETER: run.dataset_name,
        contract.INPUT_ACCOUNT_PARAMETER: storage_endpoint(settings),
        contract.SOURCE_PARAMETER: contract.source_version(run.source_container, run.source_blob, run.source_etag,
                                                           run.source_attempt),
        contract.OUTPUT_DATASTORE_PARAMETER: settings.output_datastore,
    }
    # The options file by its name; its content is shown readable on its own (OptionsShown).
    options = options_shown(run)
    values["read_options"] = options.file if options else "none"
    return values


def _notes(log: str | None) -> tuple[dict[str, Any], list[tuple[str, str]], list[str]]:
    settings: dict[str, Any] = {}
    skipped, warnings = [], []
    for line in (log or "").splitlines():
        if line.startswith("settings: {"):
            with contextlib.suppress(ValueError):
                settings = json.loads(line.removeprefix("settings: "))
        elif match := SKIPPED_SHEET.match(line):
            try:
                sheet = str(ast.literal_eval(match["sheet"]))
            except (ValueError, SyntaxError):
                sheet = match["sheet"]
            skipped.append((sheet, match["why"].strip()))
        elif WARNING_LINE.match(line):
            warnings.append(line)
    return settings, skipped, warnings


def _split_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Run-level metrics, and the per-file ones (``orders.parquet:column_types``) by file."""
    run_level: dict[str, Any] = {}
    per_file: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        file, sep, name = key.rpartition(":")
        if sep and file:
            if isinstance(value, str) and value[:1] in "[{":
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            per_file.setdefault(file, {})[name] = value
        else:
            run_level[key] = value
    return run_level, per_file


def _warnings_of(metrics: dict[str, Any]) -> list[str]:
    found = metrics.get("warnings")
    if isinstance(found, list):
        return [str(w) for w in found]
    return [str(found)] if found else []


def run_detail(conn: sqlite3.Connection, settings: LocalSettings, run: Run,
               service: BlobServiceClient | None = None) -> RunDetail:
    """``service``: read each output's parquet footer (per-column counts); None reads nothing from storage."""
    log = step_log(settings, run)
    step_settings, skipped, warnings = _notes(log)
    run_metrics, per_file = _split_metrics(run.metrics)
    outputs = registry.for_run(conn, run.run_id)
    sheets = []
    for version in sorted(outputs, key=lambda v: v.relative_path):
        file = basename(version.relative_path)
        metrics = per_file.pop(file, {})
        sheet = Sheet(file=file, sheet=version.tags.get("sheet", file), dataset=version,
                      rows=_int(version.tags.get("rows")), metrics=metrics, warnings=_warnings_of(metrics))
        kinds = metrics.get("column_types") if isinstance(metrics.get("column_types"), dict) else {}
        sheet.columns = [parquetview.Column(name, str(kind), str(kind), None, None) for name, kind in kinds.items()]
        if service is not None:
            _read_columns(settings, service, sheet)
        sheets.append(sheet)
    # Per-file metrics of files that registered nothing (a newer step's extra outputs): shown as they are.
    for file, metrics in per_file.items():
        sheets.append(Sheet(file=file, sheet=file, dataset=None, metrics=metrics, warnings=_warnings_of(metrics)))
    later = runstore.later_completed(conn, run) if run.status == RunStatus.FAILED else None
    return RunDetail(run=run, parameters=parameters(run, settings), step_settings=step_settings, sheets=sheets,
                     skipped_sheets=skipped, warnings=warnings + _warnings_of(run_metrics), metrics=run_metrics,
                      outputs=outputs, log=log, newer=newer_version(conn, run), options=options_shown(run),
                      later=later)


def _read_columns(settings: LocalSettings, service: BlobServiceClient, sheet: Sheet) -> None:
    from azure.core.exceptions import AzureError

    assert sheet.dataset is not None
    where = location(settings, sheet.dataset, service)
    try:
        info = parquetview.read_info(service.get_blob_client(where.container, where.path))
    except (AzureError, OSError, ValueError) as exc:
        # The column types still come from the metrics; only the per-column counts need the parquet.
        why = "storage is unreachable" if storage_unreachable(exc) else exc.__class__.__name__
        sheet.note = f"null and error counts need {where.blob_path}, which could not be read: {why}"
        return
    sheet.columns, sheet.rows = info.columns, info.rows


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
