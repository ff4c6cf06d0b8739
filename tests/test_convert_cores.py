"""The sheets of a workbook are parsed at once up to the cores the process may use (its affinity and
its container's CPU quota, not the machine's count), and as far as the reader's memory limit allows."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from convert import usable_cores
from convert_reader import _Budget

STEP = Path(__file__).resolve().parents[1] / "step_scripts"


@pytest.mark.parametrize(("cpu_max", "v1", "cores"), [
    ("150000 100000\n", None, 2),  # a quota of 1.5 cores: 2 threads keep it busy
    ("50000 100000\n", None, 1),
    ("max 100000\n", None, None),  # no quota: the affinity decides
    (None, ("250000\n", "100000\n"), 3),  # cgroup v1
    (None, ("-1\n", "100000\n"), None),
])
def test_a_container_quota_caps_the_cores(tmp_path: Path, cpu_max: str | None, v1: tuple[str, str] | None,
                                          cores: int | None) -> None:
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max)
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0])
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1])
    import os

    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path) == min(cores or affinity, affinity)


def test_the_affinity_counts_not_the_machine(tmp_path: Path) -> None:
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
            "from convert import usable_cores; print(usable_cores(), os.cpu_count())")
    out = subprocess.run([sys.executable, "-c", code, str(STEP)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "1"


def test_sheets_wait_until_their_memory_fits() -> None:
    budget = _Budget(100)
    events: list[str] = []

    def sheet(name: str, need: int, hold: float) -> None:
        with budget.take(need):
            events.append(f"{name} in")
            time.sleep(hold)
            events.append(f"{name} out")

    big = threading.Thread(target=sheet, args=("big", 80, 0.3))
    big.start()
    time.sleep(0.05)
    second = threading.Thread(target=sheet, args=("second", 50, 0))  # 80 + 50 > 100: waits for big
    second.start()
    second.join()
    big.join()
    assert events == ["big in", "big out", "second in", "second out"]
    alone = threading.Thread(target=sheet, args=("huge", 500, 0))  # more than all of it, alone: starts
    alone.start()
    alone.join(5)
    assert events[-2:] == ["huge in", "huge out"]
