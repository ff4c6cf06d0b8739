"""A workbook converted by ``convert_many``'s long-lived readers gets what a reader of its own gives it
(tests/test_convert_lifetime.py, tests/test_convert_cost.py): the readers die with the process that runs
them, whatever kills it, and leave no staging folder; a reader killed from outside costs its workbook a
``ReaderKilled`` (a batch's version ``failed``, to run again), not a rejection, and the others convert;
each workbook has its own time bound, counted from its own job. Real processes, real signals."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheetdrop_contract import batch as batch_contract
from sheetdrop_contract import contract
from sheetdrop_local.azurite import Azurite
from sheetdrop_step import batch_split
from sheetdrop_step.converter import (
    Converted,
    Limits,
    ReaderKilled,
    Workbook,
    WorkbookRejected,
    convert_many,
    reader_count,
)
from tests.test_convert_cost import padded_sheet
from tests.test_convert_lifetime import killed_with_its_reader, reader_of, staged, wait_for
from tests.test_convert_reject import small_xlsx
from tests.test_step import account, put_blob

#: In a long-lived reader's command line (``_reading.pool.SERVE``).
SERVE = b"_reading.serve"
#: A process that converts four copies of a workbook with two long-lived readers.
MANY = ("import sys; from pathlib import Path; from sheetdrop_step.converter import Workbook, convert_many; "
        "src, out = Path(sys.argv[1]), Path(sys.argv[2]); "
        "[None for _ in convert_many([Workbook(src, out / str(i)) for i in range(4)], readers=2)]")


@pytest.mark.parametrize("moment", ["reading", "job", "done"])
def test_sigkill_of_a_process_running_convert_many_leaves_no_process_and_no_staging_folder(
        workbook: Path, tmp_path: Path, temp: Path, moment: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", MANY, str(workbook), str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_with_its_reader(proc, temp, moment, marker=SERVE, readers=2)


#: AzureML v2's parallel job as its agent runs ``step/extract_batch.py`` in a worker process (tests/aml2/workspace.py
#: stands in for the whole job): the entry script imported with the task's arguments, ``init()``, ``run(mini_batch)``.
AGENT = ("import json, runpy, sys; script, mini_batch = sys.argv[1], json.loads(sys.argv[2]); "
         "sys.argv = [script, *sys.argv[3:]]; entry = runpy.run_path(script); entry['init'](); "
         "entry['run'](mini_batch)")


@pytest.mark.parametrize("step", ["extract.py", "extract_batch.py"])
@pytest.mark.parametrize("moment", ["job", "done"])
def test_sigkill_of_the_batch_step_leaves_no_process_and_no_staging_folder(
        step_snapshot: Path, azurite: Azurite, workbook: Path, tmp_path: Path, temp: Path, moment: str,
        step: str) -> None:
    # The batch step run by hand, as AzureML v1 and the local runner start it (a manifest of three versions), or
    # as v2's agent runs its entry script (a mini-batch of the split step's files).
    data = workbook.read_bytes()
    versions = [batch_contract.PinnedVersion(**{
        "container": pinned["source_container"], "blob": pinned["source_blob"], "etag": pinned["source_etag"]},
        dataset_name=f"rows{i}") for i, pinned in enumerate(put_blob(azurite, data, f"rows/{i}.xlsx")
                                                             for i in range(3))]
    encode = contract.encode_argument
    if step == "extract.py":
        command = [str(step_snapshot / contract.SCRIPT_NAME), *(str(a) for a in contract.step_arguments(
            encode(account(azurite)), tmp_path / "out", encode("workspaceblobstore"),
            encode(contract.PLACEHOLDER_DATASET_NAME), encode(contract.PLACEHOLDER_SOURCE),
            encode(contract.PLACEHOLDER_READ_OPTIONS), manifest=batch_contract.encode_manifest(versions)))]
    else:
        groups = tmp_path / "groups"
        groups.mkdir()
        for start, items in batch_split.groups(versions).items():
            (groups / f"{start:06d}.json").write_text(json.dumps(items), encoding="utf-8")
        command = ["-c", AGENT, str(step_snapshot / "extract_batch.py"),
                   json.dumps(sorted(str(g) for g in groups.iterdir())),
                   f"--{contract.INPUT_ACCOUNT_PARAMETER}", encode(account(azurite)),
                   f"--{contract.OUTPUT_DATASTORE_PARAMETER}", encode("workspaceblobstore"),
                   f"--{contract.OUTPUT_PATH_PARAMETER}", encode("azureml/job/extracted"),
                   "--output_extract", str(tmp_path / "out")]
    proc = subprocess.Popen([sys.executable, *command], cwd=step_snapshot,
                            env={"PATH": "/usr/bin:/bin", "TMPDIR": str(temp),
                                 "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The copies of the blobs it read are in a staging folder of its own, which nothing can remove at a SIGKILL.
    killed_with_its_reader(proc, temp, moment, copies=True, marker=SERVE,
                           readers=min(3, reader_count(Limits())))


def kill_the_reader_of(name: str, temp: Path, done: threading.Event) -> threading.Thread:
    """A thread that SIGKILLs the long-lived reader under this process (there is one) once it reads the workbook
    named ``name``, as an OOM killer would."""
    def reads_it() -> bool:
        return done.is_set() or any(os.readlink(link).endswith(f"/{name}") for link in staged(temp, "input.*")
                                    if link.is_symlink())

    def kill() -> None:
        wait_for(reads_it, 60, f"a reader reading {name}")
        pid = reader_of(os.getpid(), SERVE)
        if not done.is_set() and pid is not None:
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_reader_killed_from_outside_costs_its_workbook_only(workbook: Path, tmp_path: Path, temp: Path) -> None:
    books = [small_xlsx(tmp_path / "a.xlsx"), workbook, small_xlsx(tmp_path / "b.xlsx"),
             small_xlsx(tmp_path / "c.xlsx")]
    done = threading.Event()
    killer = kill_the_reader_of(workbook.name, temp, done)
    try:
        results = {w.key: r for w, r in convert_many(
            [Workbook(b, tmp_path / "out" / b.stem, key=b.stem) for b in books], readers=1)}
    finally:
        done.set()
        killer.join()
    killed = results.pop(workbook.stem)
    assert isinstance(killed, ReaderKilled) and not isinstance(killed, WorkbookRejected)
    assert killed.signum == signal.SIGKILL and "not for this workbook" in str(killed)
    assert {k: [s.rows for s in r] for k, r in results.items() if isinstance(r, Converted)} == {
        "a": [1], "b": [1], "c": [1]}
    assert not (tmp_path / "out" / workbook.stem).exists() and not list(temp.iterdir())


def test_a_batch_version_whose_reader_was_killed_from_outside_failed_and_is_not_rejected(
        azurite: Azurite, workbook: Path, tmp_path: Path, temp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sheetdrop_step import batch
    from sheetdrop_step.contexts.standalone import StandaloneContext
    from sheetdrop_step.converter import options_from_env

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    uploads = [("sales/a.xlsx", small_xlsx(tmp_path / "a.xlsx")), ("rows/rows.xlsx", workbook),
               ("sales/b.xlsx", small_xlsx(tmp_path / "b.xlsx"))]
    versions = []
    for name, path in uploads:
        pinned = put_blob(azurite, path.read_bytes(), name)
        versions.append(batch_contract.PinnedVersion(pinned["source_container"], name, pinned["source_etag"],
                                                     name.split("/")[0]))
    where = batch.Where(tmp_path / "out", "azureml/batch/extracted", "workspaceblobstore", account(azurite))
    done = threading.Event()
    killer = kill_the_reader_of("rows.xlsx", temp, done)
    try:
        ended = batch.convert_versions(StandaloneContext(), list(enumerate(versions)), where, options_from_env({}),
                                       readers=1)
    finally:
        done.set()
        killer.join()
    assert [(o.outcome, o.code) for o in ended] == [("converted", None), ("failed", "reader-killed"),
                                                    ("converted", None)]
    assert "killed by SIGKILL" in (ended[1].reason or "") and "converting it again" in (ended[1].reason or "")


def test_each_job_of_a_long_lived_reader_has_its_own_time_bound(tmp_path: Path) -> None:
    # The cap is 5 s; one reader converts small workbooks for longer than that in all: each job's clock is its own.
    started = time.monotonic()

    def books() -> Iterator[Workbook]:  # (read as the reader is free)
        for i in itertools.count():
            if time.monotonic() - started > 7:
                return
            yield Workbook(small_xlsx(tmp_path / f"w{i}.xlsx"), tmp_path / "out" / str(i))

    results = [r for _, r in convert_many(books(), limits=Limits(timeout_seconds=5), readers=1)]
    assert len(results) > 5 and all(isinstance(r, Converted) for r in results), [
        r for r in results if not isinstance(r, Converted)]


def test_a_workbook_past_its_own_time_bound_in_convert_many_is_rejected_naming_it(tmp_path: Path) -> None:
    # As tests/test_convert_cost.py for a reader of its own: the bound comes from the workbook's content.
    src = padded_sheet(tmp_path / "gnumeric.xlsx")
    limits = Limits(time_base_seconds=0, time_per_mib_seconds=0.001)
    [(_, result)] = list(convert_many([Workbook(src, tmp_path / "out")], limits=limits, readers=1))
    assert isinstance(result, WorkbookRejected) and result.code == "too-large", result
    assert "reading the workbook took longer than its time bound of " in result.reason
    assert "(0 s + 0.001 s per MiB of its 1.5" in result.reason
    assert not (tmp_path / "out").exists()
