"""A state folder and the claims written by an earlier version are read by this one.

``tests/fixtures/state-b5e30cf`` is what b5e30cf (the last commit before the Function moved into
``function/``) left after `make run`, the README's Q4 and finance drops, a text file and a renamed CSV:
its run store and registry (SQLite), the run folders, and its Azurite data (input, output, claims, dataset
names, skipped-version notes, the dev host's receipts). Started on a copy of it, the new host, CLI and
Function must see the same runs, versions, logs, names and claims.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from local_host import host_env, reachable, start_host, stop_azurite, wait_for
from sheetdrop.settings import get_settings
from sheetdrop.trigger import BlobVersion, handle_blob
from sheetdrop_local import backend

FIXTURE = REPO / "tests" / "fixtures" / "state-b5e30cf"
#: Where b5e30cf wrote the folder: its run store keeps each step log's absolute path.
WRITTEN_AT = "/tmp/b5state"
Q4_ETAG = '"0x250BB41B7077C60"'


def sheetdrop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", *args], env=env, capture_output=True,
                          text=True, timeout=180, cwd=REPO)


@pytest.fixture
def old_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    shutil.copytree(FIXTURE, state)
    # A real state folder stays where it was written; this copy moved, so its log paths move with it.
    with sqlite3.connect(state / "sheetdrop.db") as conn:
        conn.execute("UPDATE runs SET log_path = replace(log_path, ?, ?)", (WRITTEN_AT, str(state)))
    return state


def test_the_new_code_reads_what_b5e30cf_wrote(old_state: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    env, settings = host_env(old_state)
    host = start_host(env, tmp_path / "host.log")
    try:
        wait_for(lambda: reachable(settings), 60, "Azurite on the old data")

        runs = json.loads(sheetdrop(env, "runs", "--json").stdout)
        seen = sorted((f"{r['source_container']}/{r['source_blob']}", r["status"]) for r in runs)
        assert seen == [
            ("input/finance/q3-2026-report.xlsx", "completed"), ("input/finance/sheetdrop.json", "skipped"),
            ("input/misc/fake.xlsx", "failed"), ("input/sales/notes.txt", "skipped"),
            ("input/sales/sales-2026-q3.xlsx", "completed"), ("input/sales/sales-2026-q4.xlsx", "completed")], runs
        versions = json.loads(sheetdrop(env, "datasets", "--json").stdout)
        assert sorted((v["name"], v["version"]) for v in versions) == [
            ("finance", 1), *[(f"sales_{s}", n) for s in ("orders", "products", "targets") for n in (1, 2)]]
        shown = sheetdrop(env, "show", "sales_orders:1", "--format", "csv", "--head", "2")
        assert shown.returncode == 0 and len(shown.stdout.strip().splitlines()) == 3, shown.stderr
        logged = sheetdrop(env, "logs", "21a819e2")
        assert logged.returncode == 0 and "dataset: sales_orders" in logged.stdout, logged.stderr

        # The old claim of Q4's version still holds: delivering it again makes no run.
        for key, value in {**settings.function_env(), "SHEETDROP_STATE_DIR": str(old_state)}.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        backend.install(settings)
        outcome = handle_blob(BlobVersion("input", "sales/sales-2026-q4.xlsx", Q4_ETAG, 13000))
        assert (outcome.action, outcome.reason) == ("duplicate", "already submitted as run "
                                                                 "0dd85a38-400e-46eb-8893-ec7cc94050a6")

        # The folder keeps its dataset name and its versions go on; the finance folder's options still apply.
        dropped = sheetdrop(env, "drop", str(REPO / "samples" / "sales-2026-q3.xlsx"), "--as", "sales/again.xlsx",
                            "--wait")
        assert dropped.returncode == 0, dropped.stdout + dropped.stderr
        assert "sales_orders:3, sales_products:3, sales_targets:3" in dropped.stdout
        dropped = sheetdrop(env, "drop", str(REPO / "samples" / "finance" / "q3-2026-report.xlsx"), "--as",
                            "finance/again.xlsx", "--wait")
        assert dropped.returncode == 0 and "finance:2" in dropped.stdout, dropped.stdout + dropped.stderr
    finally:
        get_settings.cache_clear()
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=60)
        stop_azurite(settings)
