"""The sheets of a workbook are parsed at once up to the cores the process may use (its affinity and
its container's CPU quota, not the machine's count), as many as fit in the reader's memory limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sheetdrop_step.converter import usable_cores
from sheetdrop_step.converter._reading.reader import parallel


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
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
            "from sheetdrop_step.converter import usable_cores; print(usable_cores(), os.cpu_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "1"


def test_sheets_parsed_at_once_fit_in_the_memory_limit() -> None:
    mib = 1024**2
    # Each parse takes PARSE_FACTOR (2.5) times its XML, beside the process's own 512 MiB.
    assert parallel(4, [100 * mib] * 6, 6144 * mib) == 4  # 4 x 250 MiB fit
    assert parallel(4, [800 * mib, 10 * mib], 6144 * mib) == 2  # as many as there are sheets
    assert parallel(4, [1000 * mib] * 3, 6144 * mib) == 2  # 2 x 2.5 GiB fit, 3 do not
    assert parallel(8, [4000 * mib], 6144 * mib) == 1  # alone, even beyond the limit (the limit decides)
    assert parallel(2, [], 6144 * mib) == 1
