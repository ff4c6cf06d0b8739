"""The batch step: the versions a manifest pins in, each one's parquet, registrations and outcome out
(``sheetdrop_contract.batch`` is its contract).

Each version is read by its etag exactly as the single step reads its one (``source``: a version replaced since
it was pinned ends ``superseded``, naming the newer etag), converted by the converter's long-lived readers
(``convert_many``: no process start per workbook, a hostile workbook costs its own version only), and registered
as the single step registers (``registration``), in manifest order, so that two versions of one dataset get their
dataset versions in the order they were written. Nothing a version does ends the batch: each ends ``converted``,
``rejected``, ``superseded`` or ``failed``, one line of ``outcomes.jsonl`` each.

:func:`convert_versions` is the work; :func:`run` is the step of a v1 run and of the local runner (one process,
every usable core), and AzureML v2's parallel job calls :func:`convert_versions` on each mini-batch
(``step/extract_batch.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sheetdrop_contract import batch as contract_batch
from sheetdrop_contract import read_options
from sheetdrop_contract.batch import OUTCOMES_FILE, PinnedVersion, VersionOutcome, outcome_counts, version_folder
from sheetdrop_contract.contract import OUTPUT_NAME, read_step_settings
from sheetdrop_step import schema_changes, source
from sheetdrop_step.contexts import StepContext, get_context
from sheetdrop_step.converter import (
    Converted,
    Limits,
    ReaderKilled,
    Workbook,
    WorkbookRejected,
    convert_many,
    options_from_env,
    staging_folder,
)
from sheetdrop_step.registration import previous_types, register_sheets
from sheetdrop_step.tables import TableRun

#: Workbooks fetched ahead of the readers, per reader (the fetch is I/O; the readers should never wait for it).
PREFETCH_PER_READER = 2
FETCHERS = 4
#: The code of a version whose reader was killed from outside the converter (``failed``: run it again).
READER_KILLED = "reader-killed"


@dataclass
class Where:
    """Where a batch writes: the output folder as mounted, its path on the datastore, and the datastore."""

    outdir: Path
    relative_dir: str
    datastore: str
    input_account: str


def run(args: argparse.Namespace, versions: Sequence[PinnedVersion]) -> int:
    """The batch step of one run: every version of the manifest, one outcome each, then the run's counts."""
    started = time.monotonic()
    context = get_context({**os.environ, **args.settings})
    context.start_batch(list(versions))
    os.makedirs(args.output_extract, exist_ok=True)  # AzureML does not create the output folder
    relative_dir = args.output_path.strip("/") if args.output_path else \
        context.output_path(OUTPUT_NAME, args.output_datastore)
    print(f"settings: {json.dumps(read_step_settings(args.settings), sort_keys=True)}", flush=True)
    print(f"batch of {len(versions)} versions", flush=True)
    where = Where(Path(args.output_extract), relative_dir, args.output_datastore, args.input_account)
    outcomes = convert_versions(context, list(enumerate(versions)), where, options_from_env(args.settings))
    with open(where.outdir / OUTCOMES_FILE, "w", encoding="utf-8") as handle:
        for outcome in outcomes:
            handle.write(json.dumps(outcome.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
    counts = outcome_counts(outcomes)
    for name, count in counts.items():
        context.log_metric(name, count)
    context.log_metric("seconds", round(time.monotonic() - started, 3))
    context.complete()
    print("batch: " + ", ".join(f"{n} {name.removeprefix('versions_')}" for name, n in counts.items()), flush=True)
    return 0


def convert_versions(context: StepContext, items: list[tuple[int, PinnedVersion]], where: Where,
                     limits: dict[str, Any], readers: int | None = None) -> list[VersionOutcome]:
    """Each ``(position, version)`` read, converted and registered; its outcome, recorded with the context."""
    return _Batch(context, items, where, limits, readers).run()


class _Batch:
    def __init__(self, context: StepContext, items: list[tuple[int, PinnedVersion]], where: Where,
                 limits: dict[str, Any], readers: int | None) -> None:
        self.context, self.items, self.where = context, items, where
        self.include_hidden = bool(limits.get("include_hidden"))
        self.limits: Limits = limits["limits"]
        self.readers = readers
        self.outcomes: dict[int, VersionOutcome] = {}
        self.converted: dict[int, Converted | Exception] = {}
        self.options: dict[int, read_options.ReadOptions] = {}
        #: Set once a version has its outcome: a later version of the same dataset with "schema_changes": "rescue"
        #: waits for it (its previous types are that version's).
        self.ended = {position: threading.Event() for position, _ in items}
        #: The copies of the batch's blobs: a staging folder, which the next conversion on the machine removes if
        #: the step is killed (set by run).
        self.folder = Path()
        self.next = 0  # the index in items of the next version to register
        #: The versions of table-mode folders add to their tables, committed once at the batch's end: one table
        #: version per batch (per mini-batch in a v2 parallel step, which holds one dataset's versions), not per file.
        self.table = TableRun(context, where.datastore, where.input_account, where.outdir, where.relative_dir)

    def run(self) -> list[VersionOutcome]:
        with staging_folder() as self.folder:
            for position, version in self.items:
                try:
                    self.options[position] = read_options.from_parameter(version.read_options)
                except read_options.OptionsError as exc:
                    # As a single run fails before anything is converted: fixing the file is new work.
                    self._end(position, version, "rejected", code="options", reason=str(exc))
            with ThreadPoolExecutor(FETCHERS, "sheetdrop-fetch") as fetchers:
                self.fetchers = fetchers
                for book, result in convert_many(self._workbooks(), include_hidden=self.include_hidden,
                                                 limits=self.limits, readers=self.readers):
                    self.converted[book.key] = result
                    Path(book.src).unlink(missing_ok=True)
                    self._register_ready()
            self._register_ready()
            for reference in self.table.commit():
                print(f"dataset: {reference}", flush=True)
        return [self.outcomes[position] for position, _ in self.items]

    # -- reading, in manifest order, a few ahead of the readers -------------------------------------

    def _workbooks(self) -> Iterator[Workbook]:
        todo = [(p, v) for p, v in self.items if p not in self.outcomes]
        ahead = PREFETCH_PER_READER * max(1, self.readers or os.cpu_count() or 1)
        fetches: dict[int, Future[Path]] = {}
        for index, (position, version) in enumerate(todo):
            for later, pinned in todo[index:index + ahead]:
                if later not in fetches:
                    fetches[later] = self.fetchers.submit(self._fetch, later, pinned)
            try:
                src = fetches.pop(position).result()
            except source.Superseded as replaced:
                print(f"version {position}: superseded: {version.container}/{version.blob} is no longer etag "
                      f"{version.etag} but {replaced.newer_etag}; the run of that version converts it", flush=True)
                self._end(position, version, "superseded", superseded_by_etag=replaced.newer_etag)
                continue
            except source.InputGone as exc:
                if self.options[position].table:  # its rows leave the folder's tables at the batch's commit
                    self.table.deleted(version.dataset_name, version.container)
                self._end(position, version, "failed", code="input-gone",
                          reason=f"{exc}; upload it again to convert it")
                continue
            except source.InputUnreachable as exc:
                self._end(position, version, "failed", code="storage-unreachable", reason=str(exc))
                continue
            except Exception as exc:  # reading this version failed otherwise: its failure, not the batch's
                self._end(position, version, "failed", code="error", reason=f"{exc.__class__.__name__}: {exc}")
                continue
            options = self.options[position]
            previous = {}
            if options.schema_changes == "rescue":
                for earlier, other in self.items:
                    if earlier < position and other.dataset_name == version.dataset_name:
                        self.ended[earlier].wait()
                previous = previous_types(self.context, version.dataset_name)
            yield Workbook(src, self.where.outdir / str(position), source=version.blob, options=options,
                           previous=previous, key=position)

    def _fetch(self, position: int, version: PinnedVersion) -> Path:
        folder = self.folder / str(position)
        folder.mkdir()
        return source.fetch(self.where.input_account, self.context.storage_credential(), version.source(), folder,
                            self.context.storage_retries)

    # -- registering, in manifest order ---------------------------------------------------------------

    def _register_ready(self) -> None:
        """Register, in manifest order, every version whose turn has come and whose conversion has ended."""
        while self.next < len(self.items):
            position, version = self.items[self.next]
            if position not in self.outcomes:
                if position not in self.converted:
                    return
                self._register(position, version, self.converted.pop(position))
            self.next += 1

    def _register(self, position: int, version: PinnedVersion, result: Converted | Exception) -> None:
        if isinstance(result, WorkbookRejected):
            self._end(position, version, "rejected", code=result.code, reason=result.reason)
            return
        if isinstance(result, ReaderKilled):
            # Not a verdict on the workbook (an OOM killer, an operator): the version failed, to be run again, as a
            # single run whose reader was killed is run again.
            self._end(position, version, "failed", code=READER_KILLED, reason=str(result))
            return
        if isinstance(result, Exception):
            self._end(position, version, "failed", code="error", reason=f"{result.__class__.__name__}: {result}")
            return
        metrics: dict[str, Any] = {}
        try:
            # Its own folder, as a single run's output: the files and their metrics are named as there.
            datasets = register_sheets(
                self.context, result, source=version.source(), dataset_name=version.dataset_name,
                options=self.options[position], outdir=self.where.outdir / str(position),
                relative_dir=version_folder(self.where.relative_dir, position), datastore=self.where.datastore,
                metric=metrics.__setitem__, table=self.table if self.options[position].table else None)
        except schema_changes.SchemaChanged as exc:
            self._end(position, version, "rejected", code="schema", reason=str(exc))
        except Exception as exc:  # the registry refused: this version's failure, not the batch's
            self._end(position, version, "failed", code="register", reason=f"{exc.__class__.__name__}: {exc}")
        else:
            self._end(position, version, "converted", datasets=datasets, metrics=metrics)

    def _end(self, position: int, version: PinnedVersion, outcome: contract_batch.Outcome, **details: Any) -> None:
        ended = VersionOutcome(position, version, outcome, **details)
        self.outcomes[position] = ended
        self.context.record_outcome(ended)
        what = f"{ended.code}: {ended.reason}" if ended.code else ", ".join(ended.datasets) or outcome
        print(f"version {position}: {version.container}/{version.blob} (etag {version.etag}): {outcome}"
              f"{'' if what == outcome else f' ({what})'}", flush=True)
        self.ended[position].set()



# -- AzureML v2: the parallel job's entry points (step/extract_batch.py) ------------------------------------------

_parallel: dict[str, Any] = {}


def parallel_init(argv: Sequence[str] | None = None) -> None:
    """Once per worker process: its program arguments (each encoded, as every step argument), its context, its
    settings. The agent's own arguments are on the same command line: only ours are read."""
    import sys

    from sheetdrop_contract import contract

    parser = argparse.ArgumentParser(prog="extract_batch.py", add_help=False)
    for name in (contract.INPUT_ACCOUNT_PARAMETER, contract.OUTPUT_DATASTORE_PARAMETER,
                 contract.OUTPUT_PATH_PARAMETER, "output_extract"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument(f"--{contract.SETTING_OPTION}", action="append", default=[])
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    settings = contract.parse_settings(args.setting)
    context = get_context({**os.environ, **settings})
    print(f"settings: {json.dumps(read_step_settings(settings), sort_keys=True)}", flush=True)
    _parallel.update(context=context, limits=options_from_env(settings), where=Where(
        Path(args.output_extract), contract.decode_argument(args.output_path, "output_path").strip("/"),
        contract.decode_argument(args.output_datastore, "output_datastore"),
        contract.decode_argument(args.input_account, "input_account")))


def parallel_run(mini_batch: Sequence[str]) -> list[str]:
    """One mini-batch: every version of its files (one dataset's versions each), in manifest order. One row per
    file, as the agent counts them (each row a success: a version that failed is an outcome, not an item to retry):
    the JSON list of that dataset's versions' outcomes."""
    from sheetdrop_step.batch_split import read_group

    groups = [read_group(Path(path)) for path in mini_batch]
    _parallel["where"].outdir.mkdir(parents=True, exist_ok=True)
    ended = {outcome.position: outcome for outcome in convert_versions(
        _parallel["context"], sorted((item for group in groups for item in group), key=lambda item: item[0]),
        _parallel["where"], _parallel["limits"])}
    return [json.dumps([ended[position].to_json() for position, _ in group], ensure_ascii=False, sort_keys=True)
            for group in groups]
