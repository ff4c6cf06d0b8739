"""Workbook → parquet, without AzureML: :func:`convert_workbook`.

This process never opens the workbook's content: it starts the reader process (``_reading.launch``)
under an address-space limit and a timeout, hands it a :class:`_job.Job`, and moves the parquet files
it wrote into ``outdir``: all of them, or none when the workbook is rejected. README.md, "The
converter", says the rules.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sheetdrop_contract.contract import read_step_settings, slug
from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_step.converter._job import Job, Limits
from sheetdrop_step.converter._reading.launch import reader_outcome
from sheetdrop_step.converter._staging import staging_folder

if TYPE_CHECKING:
    from sheetdrop_step.converter._reading.pool import ReaderProcess

CONVERTER_VERSION = "3.0.0"
log = logging.getLogger("sheetdrop.convert")


@dataclass
class SheetOutput:
    sheet: str
    slug: str
    path: Path
    rows: int
    columns: int
    column_types: dict[str, str] = field(default_factory=dict)
    nulls: int = 0
    errors: int = 0
    bytes: int = 0
    null_counts: dict[str, int] = field(default_factory=dict)
    error_counts: dict[str, int] = field(default_factory=dict)
    header: str = ""  # where the header was found
    warnings: list[str] = field(default_factory=list)
    rescued: dict[str, int] = field(default_factory=dict)  # column → cells moved to _rescued_data


class Converted(list[SheetOutput]):
    """The sheets written, in workbook order; ``skipped``: the sheets left out, with why."""

    skipped: list[tuple[str, str]]


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may run on: its CPU affinity, capped by a container's CPU quota (cgroup
    v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``); ``os.cpu_count()`` counts the machine's instead."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for quota, period in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            fields = (cgroup / quota).read_text().split()
            if fields[0] not in ("max", "-1"):
                share = int(fields[0]) / int(fields[1] if period is None else (cgroup / period).read_text())
                return max(1, min(cores, math.ceil(share)))
        except (OSError, ValueError, IndexError):
            continue
    return max(1, cores)


def convert_workbook(
    src: Path, outdir: Path, *, source: str | None = None, include_hidden: bool = False,
    limits: Limits | None = None, workers: int | None = None, options: ReadOptions | None = None,
    previous: dict[str, dict[str, str]] | None = None, reader: ReaderProcess | None = None,
) -> Converted:
    """Write one ``<sheet-slug>.parquet`` per visible non-empty worksheet of ``src`` into ``outdir``.

    Raises :class:`WorkbookRejected` (leaving ``outdir`` untouched) when the workbook cannot be
    converted. ``workers`` caps the sheets parsed at once (default: :func:`usable_cores`); ``options``
    are the folder's read options; ``previous``, by sheet name, the column types of each sheet's
    previous dataset version (kept with ``"schema_changes": "rescue"``); ``reader``, a long-lived reader
    process to read it in (``convert_many``'s) instead of a new one.
    """
    src, outdir = Path(src), Path(outdir)
    limits = limits or Limits()
    # Staged on local disk, not next to outdir: in AzureML outdir is a blob mount, where renames are
    # not to be relied on and a killed step would leave staging blobs behind. A long-lived reader's are
    # inside its own folder, which it removes when its parent dies.
    with reader.staging(limits) if reader else staging_folder() as staging:
        job = Job(src=str(src.resolve()), staging=str(staging), source=source or src.name, version=CONVERTER_VERSION,
                  include_hidden=include_hidden, limits=limits, cores=workers or usable_cores(),
                  options=options or ReadOptions(), previous=previous or {})
        with reader.outcome(job) if reader else reader_outcome(job) as outcome:
            outdir.mkdir(parents=True, exist_ok=True)
            outputs = Converted()
            outputs.skipped = [(item.sheet, item.why) for item in outcome.skipped]
            names = _unique_slugs([r.sheet for r in outcome.sheets])
            for result, name in zip(outcome.sheets, names, strict=True):
                path = outdir / f"{name}.parquet"
                shutil.move(staging / Path(result.file).name, path)
                outputs.append(SheetOutput(result.sheet, name, path, result.rows, result.columns,
                                           result.column_types, sum(result.null_counts.values()),
                                           sum(result.error_counts.values()), result.bytes, result.null_counts,
                                           result.error_counts, result.header, result.warnings, result.rescued))
    for item in outcome.skipped:
        log.info("skipped sheet %r of %s: %s", item.sheet, src.name, item.why)
    for note in outcome.notes:
        log.info("%s: %s", src.name, note)
    for result in outcome.sheets:
        for warning in result.warnings:
            log.warning("warning: sheet %r: %s", result.sheet, warning)
    return outputs


def _unique_slugs(names: list[str]) -> list[str]:
    used: dict[str, None] = {}  # in sheet order
    for name in names:
        base = unique = slug(name, "sheet")
        n = 1
        while unique in used:
            n += 1
            unique = f"{base}_{n}"
        used[unique] = None
    return list(used)


def options_from_env(env: dict[str, str] | None = None) -> dict[str, object]:
    """``convert_workbook`` keyword options from the step settings (the contract names them and
    gives their defaults); a bad value raises ``contract.StepSettingError`` naming the setting."""
    values = read_step_settings(os.environ if env is None else env)
    limits = Limits(
        max_file_bytes=int(values["SHEETDROP_MAX_FILE_MB"] * 1024**2),
        max_cells=int(values["SHEETDROP_MAX_CELLS"]),
        max_memory_bytes=int(values["SHEETDROP_READER_MEMORY_MB"] * 1024**2),
        timeout_seconds=float(values["SHEETDROP_READER_TIMEOUT_S"]),
    )
    return {"include_hidden": bool(values["SHEETDROP_INCLUDE_HIDDEN"]), "limits": limits}
