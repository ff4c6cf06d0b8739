"""Workbook → parquet, without AzureML: ``convert_workbook`` (and ``python -m sheetdrop_step INPUT OUTDIR``).

Self-contained (this folder is the step's AzureML snapshot). This process never opens the workbook's
content: it starts the reader process (``convert_reader.py``) under an address-space limit and a
timeout, hands it a :class:`convert_job.Job`, and moves the parquet files it wrote into ``outdir``:
all of them, or none when the workbook is rejected. A reader that aborts (SIGABRT on a failed
allocation), is killed or runs out of time still ends as a rejection with a reason. Run as a script
it exits 0, or 2 with one line ``error: <code>: <reason>``. README.md, "The converter", says the rules.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sheetdrop_contract.contract import StepSettingError, read_step_settings, slug
from sheetdrop_contract.read_options import OPTIONS_FILE, OptionsError, ReadOptions, parse
from sheetdrop_step.convert_job import Job, Limits, Outcome, outcome_from_json, to_json
from sheetdrop_step.rejection import OUT_OF_MEMORY, WorkbookRejected

CONVERTER_VERSION = "2.1.0"
#: The reader runs from the same files as this process, under the same import names: ``-P`` keeps the
#: working directory off its path and PYTHONPATH names the folder this package was imported from (the
#: step's snapshot in AzureML and under the local runner, the checkout's step/ in development).
READER = ("-P", "-c", "from sheetdrop_step.convert_reader import main; main()")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
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
    previous: dict[str, dict[str, str]] | None = None,
) -> Converted:
    """Write one ``<sheet-slug>.parquet`` per visible non-empty worksheet of ``src`` into ``outdir``.

    Raises :class:`WorkbookRejected` (leaving ``outdir`` untouched) when the workbook cannot be
    converted. ``workers`` caps the sheets parsed at once (default: :func:`usable_cores`); ``options``
    are the folder's read options; ``previous``, by sheet name, the column types of each sheet's
    previous dataset version (kept with ``"schema_changes": "rescue"``).
    """
    src, outdir = Path(src), Path(outdir)
    limits = limits or Limits()
    # Staged on local disk, not next to outdir: in AzureML outdir is a blob mount, where renames are
    # not to be relied on and a killed step would leave staging blobs behind.
    staging = Path(tempfile.mkdtemp(prefix="sheetdrop-staging-"))
    try:
        job = Job(src=str(src.resolve()), staging=str(staging), source=source or src.name, version=CONVERTER_VERSION,
                  include_hidden=include_hidden, limits=limits, cores=workers or usable_cores(),
                  options=options or ReadOptions(), previous=previous or {})
        outcome = _run_reader(job)
        outdir.mkdir(parents=True, exist_ok=True)
        outputs = Converted()
        outputs.skipped = [(item.sheet, item.why) for item in outcome.skipped]
        names = _unique_slugs([r.sheet for r in outcome.sheets])
        for result, name in zip(outcome.sheets, names, strict=True):
            path = outdir / f"{name}.parquet"
            shutil.move(staging / Path(result.file).name, path)
            outputs.append(SheetOutput(result.sheet, name, path, result.rows, result.columns, result.column_types,
                                       sum(result.null_counts.values()), sum(result.error_counts.values()),
                                       result.bytes, result.null_counts, result.error_counts, result.header,
                                       result.warnings, result.rescued))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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


def _limit(max_memory: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort should not dump gigabytes of core


def _run_reader(job: Job) -> Outcome:
    """The reader process, from start to verdict."""
    staging, limits = Path(job.staging), job.limits
    # MALLOC_ARENA_MAX: glibc reserves an arena per thread (64 MiB of address space each), which
    # counts against RLIMIT_AS without holding any data. Arrow allocating from glibc too reuses what
    # the parses freed (its own jemalloc pool kept both: 3 sheets of 50k rows peaked 286 MiB, not 199).
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system", "PYTHONPATH": path}
    # Files, not pipes, for its output: nothing it prints can fill a pipe and block it.
    with (staging / "reader.out").open("wb") as out, (staging / "reader.err").open("wb") as err:
        proc = subprocess.Popen([sys.executable, *READER], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                env=env, preexec_fn=lambda: _limit(limits.max_memory_bytes))
    try:
        proc.communicate(to_json(job).encode(), timeout=limits.timeout_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise WorkbookRejected("too-large", f"reading the workbook took longer than the {limits.timeout_seconds:.0f} s "
                                            "limit; split it into smaller workbooks") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return _verdict(proc.returncode, staging, limits)


def _verdict(returncode: int, staging: Path, limits: Limits) -> Outcome:
    try:
        outcome = outcome_from_json((staging / "outcome.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        outcome = None
    if outcome is not None:
        if outcome.rejected is not None:
            raise WorkbookRejected.from_wire(outcome.rejected)
        return outcome
    if returncode < 0:
        sig = -returncode
        if sig in (signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS):
            raise WorkbookRejected(
                "too-large", f"the reader ran out of its {limits.max_memory_bytes / 1024**3:.0f} GiB memory budget or "
                f"crashed ({signal.Signals(sig).name}) on this workbook; it most likely declares a far larger area "
                "than its data — delete stray cells far from the data, save again and re-upload")
        raise WorkbookRejected("corrupt", f"the reader stopped with signal {sig} on this workbook")
    err = (staging / "reader.err").read_bytes().decode(errors="replace")
    if "MemoryError" in err:
        raise WorkbookRejected("too-large", OUT_OF_MEMORY)
    tail = err.strip().splitlines()[-1:] or ["no output"]
    raise WorkbookRejected("corrupt", f"the reader failed on this workbook ({tail[0][:300]})")


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


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Convert a workbook to one parquet file per sheet.")
    parser.add_argument("input", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--source", help="source name recorded in the parquet metadata (default: file name)")
    parser.add_argument("--include-hidden", action="store_true", help="also convert hidden sheets")
    parser.add_argument("--options", type=Path, metavar="FILE",
                        help=f"read options, as a folder's {OPTIONS_FILE} gives them (README, 'Read options')")
    parser.add_argument("--json", action="store_true", help="print the outputs as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        options = options_from_env()
    except StepSettingError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 2
    options["include_hidden"] = options["include_hidden"] or args.include_hidden
    try:
        if args.options is not None:
            # Read as the Function reads the folder's file: bytes that are not UTF-8 make the JSON invalid.
            text = args.options.read_bytes().decode("utf-8", errors="replace")
            options["options"] = parse(text, str(args.options))
    except (OSError, OptionsError) as exc:
        print(f"error: options: {exc}", file=sys.stderr)
        return 2
    try:
        outputs = convert_workbook(args.input, args.outdir, source=args.source, **options)
    except WorkbookRejected as exc:
        print(f"error: {exc.code}: {' '.join(exc.reason.split())}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{**o.__dict__, "path": str(o.path)} for o in outputs], indent=2))
    else:
        for out in outputs:
            print(f"{out.path}\t{out.rows} rows\t{out.columns} columns")
    return 0

