"""README's "Many workbooks", run as written: every command of its shell blocks, in order, on a container that
already holds workbooks, each one's output checked. A command added there without a check here fails the test."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable

import pytest

from conftest import REPO, SAMPLE
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import db, runstore
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings


def section_commands(title: str) -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"## {title}\n")
    section = readme[start:readme.index("\n## ", start + 5)]
    return [line.split("  #", 1)[0].strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)
            for line in block.splitlines() if line.split("  #", 1)[0].strip()]


def check_dry_run(out: str, settings: LocalSettings) -> None:
    assert out.splitlines()[-1] == "would start up to 4 local runs on the local backend", out
    assert runstore.list_runs(db.connect(settings.state_dir), None) == []


def check_backfill(out: str, settings: LocalSettings) -> None:
    assert "3 versions to convert" in out.splitlines()[0], out  # sales/ only: not finance/
    assert out.strip().splitlines()[-1].startswith("backfill: 3 of 3 delivered (3 submitted)"), out
    assert sorted(r.source_blob for r in runstore.list_runs(db.connect(settings.state_dir), None)) == [
        "sales/prices.xlsx", "sales/q3.xlsx", "sales/q4.xlsx"]


def check_rerun_dry(out: str, settings: LocalSettings) -> None:
    [line] = out.splitlines()
    assert line.startswith(f"would re-run {settings.input_container}/sales/prices.xlsx (etag ") and \
        "after attempt 1" in line, out


def check_rerun(out: str, settings: LocalSettings) -> None:
    assert out.splitlines()[-1] == "rerun: 1 resubmitted", out
    conn = db.connect(settings.state_dir)
    assert [r.source_attempt for r in runstore.list_runs(conn, None) if r.source_blob == "sales/prices.xlsx"] == [2, 1]


CHECKS: dict[str, Callable[[str, LocalSettings], None]] = {
    "backfill --dry-run": check_dry_run,
    "backfill --prefix sales/ --since 2026-01-01": check_backfill,
    "rerun --status failed --dry-run": check_rerun_dry,
    "rerun --status failed": check_rerun,
}


@pytest.fixture
def unwatched(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> LocalSettings:
    from sheetdrop.settings import get_settings
    from sheetdrop_local.settings import load_local_settings

    monkeypatch.setenv("INPUT_CONTAINER", f"{env['INPUT_CONTAINER']}-old")
    get_settings.cache_clear()
    return load_local_settings()


def test_the_many_workbooks_commands_run_as_written(unwatched: LocalSettings) -> None:
    container = ensure_container(blob_service(unwatched.storage), unwatched.input_container)
    for name in ("sales/q3.xlsx", "sales/q4.xlsx", "finance/q3.xlsx"):
        container.get_blob_client(name).upload_blob(SAMPLE.read_bytes())
    container.get_blob_client("sales/prices.xlsx").upload_blob(b"sku,price\nA,1\n")  # a CSV named .xlsx: fails
    commands = section_commands("Many workbooks")
    assert [c.removeprefix(".venv/bin/sheetdrop ") for c in commands] == list(CHECKS)
    runner = LocalRunner.from_settings(unwatched)
    for command in commands:
        while runner.run_next() is not None:  # what the dev host's workers would have done meanwhile
            pass
        args = shlex.split(command)
        assert args[0] == ".venv/bin/sheetdrop", command
        done = subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", *args[1:]], cwd=REPO, env=dict(os.environ),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        CHECKS[command.removeprefix(".venv/bin/sheetdrop ")](done.stdout, unwatched)
