"""README's Quickstart, run as written: every command of its shell blocks, in order, from a fresh state
folder (`make run` in the background as the first shell, the rest as the second shell), each one's
output checked. A command added to the Quickstart without a check here fails the test."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from conftest import REPO
from local_host import host_env, wait_for
from sheetdrop_local.azurite import free_port, port_open


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Quickstart"):readme.index("\n## ", readme.index("## Quickstart") + 5)]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


class Output:
    """A process's output, collected by a thread, to wait on."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.text = ""
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: io.TextIOBase) -> None:
        for line in stream:
            self.text += line


def check_drop(out: str) -> None:
    assert re.search(r"^run [0-9a-f]{8} completed in [0-9.]+ s: sales_orders:2, sales_products:2, sales_targets:2$",
                     out, re.M), out


def check_runs(out: str) -> None:
    lines = out.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "BLOB", "ETAG", "DATASETS", "SUBMITTED", "SECONDS", "SHEETS", "ROWS",
                                "REASON"]
    assert len(lines) == 3, out
    assert "completed  input/sales/sales-2026-q4.xlsx" in lines[1] and "sales_orders:2, sales_products:2" in lines[1]
    assert "completed  input/sales/sales-2026-q3.xlsx" in lines[2] and "sales_orders:1, sales_products:1" in lines[2]


def check_run_show(out: str) -> None:
    assert re.match(r"run [0-9a-f-]{36}: completed\n", out), out
    assert "  blob        input/sales/sales-2026-q4.xlsx (etag " in out
    assert re.search(r"^Orders +sales_orders:2 +260 +9 ", out, re.M), out
    assert re.search(r"^Discount +float64 +0 +0$", out, re.M), out
    assert "\nskipped sheets\n  'Scratch': empty\n" in out


def check_logs(out: str) -> None:
    assert out.startswith("$ extract.py --input_account ")
    assert "skipped sheet 'Scratch' of sales-2026-q4.xlsx: empty" in out
    assert "dataset: sales_targets" in out


def check_datasets(out: str) -> None:
    rows = [line.split() for line in out.splitlines()[1:7]]
    assert [(r[0], r[1]) for r in rows] == [(f"sales_{s}", v) for s in ("orders", "products", "targets")
                                           for v in ("1", "2")], out
    assert all(re.fullmatch(r"[0-9a-f]{8}", r[2]) and r[-1].startswith("azureml-blobstore/azureml/") for r in rows)
    assert "which plays the datastore workspaceblobstore here" in out


def check_show_latest(out: str) -> None:
    lines = out.splitlines()
    assert re.fullmatch(r"sales_orders:2 \(run [0-9a-f]{8}\): 260 rows \(first 10\), 9 columns", lines[0]), out
    assert lines[1].startswith("stored at azureml-blobstore/azureml/")
    assert "Discount" in lines[2] and len(lines) == 13


def check_show_csv(out: str) -> None:
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["Order_ID"] for r in rows] == ["10001", "10002", "10003"], out
    assert "Discount" not in rows[0]  # version 1 is the third quarter's


def check_drop_options(out: str) -> None:
    assert re.fullmatch(r"dropped samples/finance/sheetdrop.json as input/finance/sheetdrop.json \(etag \S+\)\n",
                        out), out


def check_drop_report(out: str) -> None:
    assert re.search(r"^run [0-9a-f]{8} completed in [0-9.]+ s: finance:1$", out, re.M), out


def check_show_report(out: str) -> None:
    lines = out.splitlines()
    assert re.fullmatch(r"finance:1 \(run [0-9a-f]{8}\): 12 rows \(first 3\), 8 columns", lines[0]), out
    assert lines[2].split() == ["Region", "Rep", "Units_sold_Jul", "Units_sold_Aug", "Units_sold_Sep", "Unit_price",
                                "Last_order", "_rescued_data"], out
    assert len(lines) == 6


CHECKS: list[tuple[str, Callable[[str], None]]] = [
    ("sheetdrop drop samples/finance/sheetdrop.json", check_drop_options),
    ("sheetdrop drop samples/finance/q3-2026-report.xlsx", check_drop_report),
    ("sheetdrop show finance:latest", check_show_report),
    ("sheetdrop drop samples/sales-2026-q4.xlsx", check_drop),
    ("sheetdrop runs show latest", check_run_show),
    ("sheetdrop runs", check_runs),
    ("sheetdrop logs latest", check_logs),
    ("sheetdrop datasets", check_datasets),
    ("sheetdrop show sales_orders:latest", check_show_latest),
    ("sheetdrop show sales_orders:1 --format csv", check_show_csv),
]


def test_the_quickstart_works_as_written(tmp_path: Path) -> None:
    commands = quickstart_commands()
    assert commands[0] == "make run", commands
    env, settings = host_env(tmp_path / "state")
    env["SHEETDROP_UI_PORT"] = str(free_port())
    for name in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):  # `make test` runs us: this `make run` is a user's
        env.pop(name, None)
    first = subprocess.Popen(["bash", "-c", commands[0]], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    output = Output(first)
    try:
        wait_for(lambda: "watching for new workbooks" in output.text or first.poll() is not None, 300,
                 "`make run` to drop the sample and watch")
        assert first.poll() is None, output.text
        assert re.search(r"^input/sales/sales-2026-q3.xlsx: run [0-9a-f]{8} completed in [0-9.]+ s\n"
                         r"  sales_orders:1, sales_products:1, sales_targets:1\n", output.text, re.M), output.text
        url = f"http://127.0.0.1:{env['SHEETDROP_UI_PORT']}/"
        assert f"studio: {url}" in output.text
        with urllib.request.urlopen(url + "runs", timeout=10) as page:
            html = page.read().decode()
        assert "sales/sales-2026-q3.xlsx" in html and "sales_orders:1" in html

        for command in commands[1:]:
            proc = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=180, check=False)
            assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
            check = next((fn for prefix, fn in CHECKS if command.removeprefix(".venv/bin/").startswith(prefix)), None)
            assert check is not None, f"no check for the Quickstart command {command!r}: add one"
            check(proc.stdout)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGINT)  # Ctrl-C in its terminal
        first.wait(60)
    assert "stopping" in output.text
    time.sleep(0.2)
    assert not port_open(settings.azurite_blob_port), "Ctrl-C leaves no Azurite behind"
