"""README's "A folder as one table", run as written: every command of its shell block, in order (the dev host's
part, noticing each drop and running it, done between commands), each one's output checked. A command added
there without a check here fails the test."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable

from conftest import REPO
from sheetdrop_local import db, registry
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings
from test_readme_many import section_commands


def check_dropped(out: str, settings: LocalSettings) -> None:
    assert "uploaded" in out or "dropped" in out or out.strip(), out


def check_show(out: str, settings: LocalSettings) -> None:
    lines = out.splitlines()
    assert lines[0].startswith("orders_orders:2 (run ") and lines[0].endswith(
        "table version 2 of 2 workbooks in 2 files (2 segments): 500 rows (first 3), 11 columns"), out
    assert lines[1].startswith("manifest at output-") and lines[1].endswith(
        "/tables/orders_orders/2/manifest.json (datastore workspaceblobstore)"), out
    assert "_source_blob" in lines[2] and "_source_etag" in lines[2] and "Discount" in lines[2], out
    assert all("orders/q3.xlsx" in line for line in lines[3:6]), out


def check_datasets(out: str, settings: LocalSettings) -> None:
    found = registry.list_versions(db.connect(settings.state_dir), "orders_orders")
    assert [(v.tags["table_version"], v.tags["table_sources"], v.tags["schema_change"]) for v in found] == [
        ("1", "1", "first version"), ("2", "2", "added Discount (float64)")]
    assert "orders_orders" in out and "added Discount" in out, out


CHECKS: dict[str, Callable[[str, LocalSettings], None]] = {
    "drop samples/table/sheetdrop.json --as orders/sheetdrop.json": check_dropped,
    "drop samples/sales-2026-q3.xlsx --as orders/q3.xlsx": check_dropped,
    "drop samples/sales-2026-q4.xlsx --as orders/q4.xlsx": check_dropped,
    "show orders_orders:latest --head 3": check_show,
    "datasets orders_orders": check_datasets,
}


def test_the_table_commands_run_as_written(settings: LocalSettings) -> None:
    commands = section_commands("A folder as one table")
    assert [c.removeprefix(".venv/bin/sheetdrop ") for c in commands] == list(CHECKS)
    host, runner = DevHost(settings), LocalRunner.from_settings(settings)
    for command in commands:
        host.scan_once()  # what the dev host and its workers would have done meanwhile
        while runner.run_next() is not None:
            pass
        args = shlex.split(command)
        assert args[0] == ".venv/bin/sheetdrop", command
        done = subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", *args[1:]], cwd=REPO,
                              env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        CHECKS[command.removeprefix(".venv/bin/sheetdrop ")](done.stdout, settings)
