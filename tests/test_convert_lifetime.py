"""The converter's processes live no longer than their caller and leave nothing behind, whatever kills
it; a reader ended from outside is not blamed on the workbook. Real processes, real signals: the
`sheetdrop convert` CLI, the step script run by hand, the local runner; each SIGKILLed while its
reader reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO
from sheetdrop_contract import contract
from sheetdrop_local.azurite import Azurite
from sheetdrop_local.settings import LocalSettings
from sheetdrop_step.converter import ReaderKilled, WorkbookRejected, convert_workbook
from sheetdrop_step.converter._staging import LOCK, PREFIX, staging_folder, sweep
from tests.test_step import account, put_blob, step_argv

READER = b"_reading.reader"


def children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            found.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry.name))
    return found


def tree(root: int) -> set[int]:
    by_parent, found, todo = children(), set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(by_parent.get(pid, []))
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """Running, and not a zombie left for its parent to reap."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def wait_for(check: Callable[[], object], seconds: float, what: str) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.01)
    raise AssertionError(f"no {what} within {seconds} s")


def started_in(temp: Path) -> set[int]:
    """The processes started with ``temp`` as their temp folder: a reader forked just as its parent was
    killed is not in the tree taken before, and is no longer in any tree after."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"TMPDIR={temp}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def reader_of(root: int, marker: bytes = READER) -> int | None:
    """A reader process under ``root``: one whose command line holds ``marker`` (a long-lived one's, ``SERVE``)."""
    return next((pid for pid in tree(root) if marker in cmdline(pid)), None)


def staged(temp: Path, pattern: str) -> list[Path]:
    """What matches ``pattern`` in the staging folders under ``temp`` (a long-lived reader's hold its jobs')."""
    try:
        return list(temp.glob(f"{PREFIX}*/{pattern}")) + list(temp.glob(f"{PREFIX}*/*/{pattern}"))
    except OSError:  # (a folder removed while it was listed)
        return []


def reading(temp: Path) -> list[Path]:
    """The reader's first file of its own in a job's staging folder (one with the reader's output files, not a
    step's copies of its blobs): the job is being read."""
    return [f for err in staged(temp, "reader.err") for f in _listing(err.parent)
            if f.name not in ("reader.out", "reader.err", LOCK) and not f.is_dir()]


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.rglob("*"))
    except OSError:  # (removed while it was listed)
        return []


def only_copies(folder: Path) -> bool:
    """A staging folder holding a step's copies of its blobs and nothing of a reader's."""
    return folder.name.startswith(PREFIX) and not any(f.name in ("reader.err", "outcome.json")
                                                      for f in _listing(folder))


def killed_with_its_reader(proc: subprocess.Popen[bytes], temp: Path, moment: str, copies: bool = False,
                           marker: bytes = READER, readers: int = 1) -> None:
    """SIGKILL ``proc`` once its readers have started (``reading``), once one reads its job (``job``: its
    first file of its own in the job's staging folder), or once it is done (its outcome written, the
    parquet files not yet moved): within 5 s no process of its tree is left, nor a staging folder (nor
    anything else in its temp folder but, with ``copies``, the one staging folder where a step copied its blobs,
    which its death unlocked: the next conversion on the machine removes it, and nothing else). (Killed
    while it starts a reader, between making the reader's folder and the reader's start, it leaves that
    folder to the next conversion's sweep: ``_staging``.)"""
    wait_for(lambda: len([p for p in tree(proc.pid) if marker in cmdline(p)]) >= readers, 60,
             f"{readers} reader processes")
    reader = reader_of(proc.pid, marker)
    assert isinstance(reader, int)
    assert list(temp.glob(PREFIX + "*")), "the staging folder exists while the reader reads"
    if moment in ("job", "done"):
        # Once the reader has its job (a parent stopped before writing it would leave the reader waiting for it).
        wait_for(lambda: reading(temp), 60, "the reader's first file")
    if moment == "done":  # the reader's parent held (it takes the outcome in milliseconds) until then
        os.kill(parent_of(reader), signal.SIGSTOP)
        wait_for(lambda: staged(temp, "outcome.json"), 60, "outcome")
    everyone = tree(proc.pid) | started_in(temp)
    proc.kill()
    proc.wait()
    killed = time.monotonic()

    def left_behind() -> list[Path]:
        return [p for p in temp.iterdir() if not (copies and only_copies(p))]

    while time.monotonic() - killed < 5 and (any(alive(pid) for pid in everyone | started_in(temp)) or left_behind()):
        time.sleep(0.05)
    everyone |= started_in(temp)
    left = [(pid, cmdline(pid)) for pid in everyone if alive(pid)]
    print(f"tree of {len(everyone)} processes, gone {time.monotonic() - killed:.2f} s after the SIGKILL")
    assert not left, left
    assert not left_behind(), f"a staging folder left: {[(p, list(p.iterdir())) for p in left_behind()]}"
    if copies:  # the next conversion on the machine removes the step's copies, and they are all that is left
        held = list(temp.iterdir())
        assert len(held) == 1 and sweep(temp) == held, held


@pytest.mark.parametrize("moment", ["reading", "done"])
def test_sigkill_of_sheetdrop_convert_leaves_no_process_and_no_staging_folder(workbook: Path, tmp_path: Path,
                                                                              temp: Path, moment: str) -> None:
    cli = Path(sys.executable).with_name("sheetdrop")
    proc = subprocess.Popen([str(cli), "convert", str(workbook), str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_with_its_reader(proc, temp, moment)


@pytest.mark.parametrize("moment", ["reading", "done"])
def test_sigkill_of_the_step_leaves_no_process_and_no_staging_folder(step_snapshot: Path, azurite: Azurite,
                                                                     workbook: Path, tmp_path: Path, temp: Path,
                                                                     moment: str) -> None:
    # The step run by hand (no run context: it only converts), as AzureML starts it: it reads its blob version
    # from storage by etag.
    argv = step_argv(account(azurite), tmp_path / "out", "workspaceblobstore", "rows",
                     put_blob(azurite, workbook.read_bytes(), "rows/rows.xlsx"))
    proc = subprocess.Popen([sys.executable, str(step_snapshot / contract.SCRIPT_NAME), *argv], cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "TMPDIR": str(temp),
                                 "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The copy of the blob it read is in a staging folder of its own, which nothing can remove at a SIGKILL.
    killed_with_its_reader(proc, temp, moment, copies=True)


def kill_the_reader(root: int, done: threading.Event, seen: Callable[[], None] = lambda: None) -> threading.Thread:
    """A thread that SIGKILLs the reader under ``root`` as soon as it appears (as an OOM killer would),
    calling ``seen`` first."""
    def kill() -> None:
        pid = wait_for(lambda: reader_of(root) or done.is_set(), 60, "reader process")
        if isinstance(pid, int) and pid is not True:
            seen()
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_reader_killed_from_outside_is_not_a_rejection(workbook: Path, tmp_path: Path, temp: Path) -> None:
    done, staged = threading.Event(), []
    killer = kill_the_reader(os.getpid(), done, lambda: staged.extend(temp.glob(PREFIX + "*")))
    try:
        with pytest.raises(ReaderKilled) as caught:
            convert_workbook(workbook, tmp_path / "out")
    finally:
        done.set()
        killer.join()
    assert caught.value.signum == signal.SIGKILL and not isinstance(caught.value, WorkbookRejected)
    assert "SIGKILL" in str(caught.value) and "not for this workbook" in str(caught.value)
    assert staged and not list(temp.iterdir()) and not (tmp_path / "out").exists()
    # The same workbook, its reader left alone, converts.
    assert convert_workbook(workbook, tmp_path / "out")[0].rows == 39_999


def test_the_cli_ends_by_the_signal_that_killed_its_reader(workbook: Path, tmp_path: Path, temp: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sheetdrop_step", str(workbook), str(tmp_path / "out")],
                            stderr=subprocess.PIPE, text=True)
    done = threading.Event()
    killer = kill_the_reader(proc.pid, done)
    _, err = proc.communicate(timeout=120)
    done.set()
    killer.join()
    # Killed as its reader was: a runner sees what it sees when the step itself is killed, and retries.
    assert proc.returncode == -signal.SIGKILL, err
    assert "warning: the reader process was killed by SIGKILL" in err and "error:" not in err
    assert not list(temp.iterdir())


def test_a_reader_that_aborts_for_memory_is_a_rejection_naming_the_limit(tmp_path: Path) -> None:
    from sheetdrop_step.converter import Limits
    from tests.test_convert_reject import _far_cell_xlsx

    # calamine asks for the 17-billion-cell range of a cell at XFD1048576 and aborts (the guard lifted).
    src = _far_cell_xlsx(tmp_path / "far.xlsx")
    with pytest.raises(WorkbookRejected) as caught:
        convert_workbook(src, tmp_path / "out", limits=Limits(max_cells=10**12, max_memory_bytes=2 * 1024**3))
    assert caught.value.code == "too-large"
    assert "2048 MiB limit (SHEETDROP_READER_MEMORY_MB)" in caught.value.reason


def test_a_staging_folder_whose_converter_died_is_removed_at_the_next_start(temp: Path) -> None:
    # One left by a converter killed between its reader's end and its own: unlocked, with parquet in it.
    left = temp / f"{PREFIX}left"
    left.mkdir()
    (left / LOCK).touch()
    (left / "sheet-0.parquet").write_bytes(b"PAR1")
    other = temp / "someone-elses"
    other.mkdir()
    with staging_folder() as live:
        assert not left.exists() and other.exists()
        # A live converter's folder (locked by it) is never taken, even by a sweep from another process.
        sweeper = subprocess.run([sys.executable, "-c", "from sheetdrop_step.converter._staging import sweep; "
                                  "print(len(sweep()))"], capture_output=True, text=True, check=True,
                                 env={**os.environ, "TMPDIR": str(temp)}, cwd=REPO)
        assert sweeper.stdout.strip() == "0" and live.is_dir()
    assert not live.exists()
    assert sweep(temp) == []


def test_a_run_whose_reader_was_killed_is_run_again(settings: LocalSettings, workbook: Path) -> None:
    from sheetdrop_local import db, registry, runstore
    from sheetdrop_local.devhost import DevHost
    from sheetdrop_local.runner import LocalRunner
    from tests.test_reliability import upload

    upload(settings, "rows/rows.xlsx", workbook.read_bytes())
    assert DevHost(settings).scan_once() == 1
    runner = LocalRunner.from_settings(settings)
    runner.requeue_delay = 0
    done = threading.Event()
    killer = kill_the_reader(os.getpid(), done)  # the step runs under this process
    try:
        run = runner.run_next()
    finally:
        done.set()
        killer.join()
    assert run is not None and run.status == "queued" and "killed by SIGKILL" in (run.error or ""), run
    run = runner.run_next()
    assert run is not None and run.status == "completed" and run.attempts == 2, run
    conn = db.connect(settings.state_dir)
    assert [v.version for v in registry.list_versions(conn, "rows")] == [1]
    assert len(runstore.list_runs(conn)) == 1
