"""The converter's processes live no longer than their caller and leave nothing behind, whatever kills
it; a reader ended from outside is not blamed on the workbook. Real processes, real signals: the
`sheetdrop convert` CLI, the step script run by hand, the local runner; each SIGKILLed while its
reader reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import xlsxwriter

from conftest import REPO
from sheetdrop_contract import contract
from sheetdrop_local.azurite import Azurite
from sheetdrop_local.settings import LocalSettings
from sheetdrop_step.converter import ReaderKilled, WorkbookRejected, convert_workbook
from sheetdrop_step.converter._staging import LOCK, PREFIX, staging_folder, sweep
from test_step import account, put_blob, step_argv

READER = b"_reading.reader"


@pytest.fixture(scope="module")
def workbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workbook whose reading takes a second or two: time to find the reader and kill something."""
    path = tmp_path_factory.mktemp("lifetime") / "rows.xlsx"
    wb = xlsxwriter.Workbook(path, {"constant_memory": True})
    ws = wb.add_worksheet("Rows")
    ws.write_row(0, 0, [f"c{i}" for i in range(12)])
    for r in range(1, 40_000):
        ws.write_row(r, 0, [r, r * 0.5, f"text {r % 97}", r % 3 == 0, r * 7, "x", r, 1.25, r, "y", r, 2])
    wb.close()
    return path


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


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def reader_of(root: int) -> int | None:
    return next((pid for pid in tree(root) if READER in cmdline(pid)), None)


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The temp folder of the processes under test (where their staging folders go), the test's own."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))  # (this process has read TMPDIR already)
    yield folder


def killed_with_its_reader(proc: subprocess.Popen[bytes], temp: Path, moment: str, input_copy: str = "") -> None:
    """SIGKILL ``proc`` while its reader reads (or once the reader is done: its outcome written, the
    parquet files not yet moved): within 5 s no process of its tree is left, nor a staging folder; but for
    the step's copy of its workbook (``input_copy``, its file name), which the next conversion removes."""
    reader = wait_for(lambda: reader_of(proc.pid), 60, "reader process")
    assert isinstance(reader, int)
    assert list(temp.glob(PREFIX + "*")), "the staging folder exists while the reader reads"
    if moment == "done":  # the reader's parent held (it takes the outcome in milliseconds) until then
        # ... once the reader has its job (a parent stopped before writing it would leave the reader waiting
        # for it): the reader's first file of its own in the staging folder says it is reading.
        wait_for(lambda: [f for err in temp.glob(f"{PREFIX}*/reader.err") for f in err.parent.iterdir()
                          if f.name not in ("reader.out", "reader.err", LOCK)], 60, "the reader's first file")
        os.kill(parent_of(reader), signal.SIGSTOP)
        wait_for(lambda: list(temp.glob(f"{PREFIX}*/outcome.json")), 60, "outcome")
    everyone = tree(proc.pid)
    proc.kill()
    proc.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < 5 and any(alive(pid) for pid in everyone):
        time.sleep(0.05)
    left = [(pid, cmdline(pid)) for pid in everyone if alive(pid)]
    print(f"tree of {len(everyone)} processes, gone {time.monotonic() - killed:.2f} s after the SIGKILL")
    assert not left, left
    if input_copy:  # its owner is dead: the next conversion on the machine sweeps it, and only it is left
        held = {folder: sorted(f.name for f in folder.iterdir()) for folder in temp.iterdir()}
        assert list(held.values()) == [sorted([LOCK, input_copy])], held
        assert sweep(temp) == list(held)
    assert not list(temp.iterdir()), f"a staging folder left: {[(p, list(p.iterdir())) for p in temp.iterdir()]}"


@pytest.mark.parametrize("moment", ["reading", "done"])
def test_sigkill_of_sheetdrop_convert_leaves_no_process_and_no_staging_folder(workbook: Path, tmp_path: Path,
                                                                              temp: Path, moment: str) -> None:
    cli = Path(sys.executable).with_name("sheetdrop")
    proc = subprocess.Popen([str(cli), "convert", str(workbook), str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_with_its_reader(proc, temp, moment)


@pytest.mark.parametrize("moment", ["reading", "done"])
def test_sigkill_of_the_step_leaves_no_process_and_no_staging_folder(step_snapshot: Path, workbook: Path,
                                                                     tmp_path: Path, temp: Path, azurite: Azurite,
                                                                     moment: str) -> None:
    # The step run by hand (no run context: it only converts), as AzureML starts it: it reads its blob version
    # from storage (Azurite) by etag.
    argv = step_argv(account(azurite), tmp_path / "out", "workspaceblobstore", "rows",
                     put_blob(azurite, workbook.read_bytes(), "rows.xlsx"))
    proc = subprocess.Popen([sys.executable, str(step_snapshot / contract.SCRIPT_NAME), *argv], cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "TMPDIR": str(temp),
                                 "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_with_its_reader(proc, temp, moment, input_copy="rows.xlsx")


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
