"""`make run` again, as a person does: a second one while the first is watching, on its own ports and
state folder (not the defaults, so a real `make run` elsewhere on the machine is never touched), and
a warm start after the first one stopped.

On b5e30cf the second `make run` adopted the first one's Azurite before it found the state folder
locked, then stopped that Azurite on its way out (the first host logged "Azurite exited
unexpectedly"); and every later `make run` dropped the sample again, making it the latest version of
its datasets over the Q4 data, and printed the whole registry in lines far wider than the terminal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import REPO
from local_host import host_env, wait_for
from sheetdrop_local.azurite import free_port, port_open
from sheetdrop_local.textfit import width
from test_quickstart import Output

COLUMNS = 80


def make_run(env: dict[str, str]) -> tuple[subprocess.Popen[str], Output]:
    proc = subprocess.Popen(["make", "run"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    return proc, Output(proc)


def ctrl_c(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    proc.wait(60)


def sheetdrop(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "sheetdrop"), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_second_make_run_touches_nothing_and_a_warm_one_drops_nothing(tmp_path: Path) -> None:
    env, settings = host_env(tmp_path / "state")
    env |= {"SHEETDROP_UI_PORT": str(free_port()), "COLUMNS": str(COLUMNS)}
    for name in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):  # `make test` runs us: these `make run`s are a user's
        env.pop(name, None)
    studio = f"http://127.0.0.1:{env['SHEETDROP_UI_PORT']}/"
    first, out = make_run(env)
    try:
        wait_for(lambda: "watching for new workbooks" in out.text or first.poll() is not None, 300, "the first run")
        assert first.poll() is None, out.text
        azurite_pid = json.loads((settings.state_dir / "azurite" / "azurite.pid").read_text())["pid"]

        # 1. A second `make run` on the same state folder: one line naming the first, at once.
        started = time.monotonic()
        second = subprocess.run(["make", "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                                check=False)
        took = time.monotonic() - started
        assert second.returncode != 0 and took < 20, (took, second.stdout, second.stderr)
        state = re.escape(str(settings.state_dir))
        match = re.search(rf"^error: a host is already running for this state folder {state} "
                          rf"\(pid (\d+), studio {re.escape(studio)}\); stop it first", second.stderr, re.M)
        assert match, second.stderr
        assert b"host" in Path(f"/proc/{match[1]}/cmdline").read_bytes(), "the pid named is the first host's"
        assert "Azurite" not in second.stdout + second.stderr, "it started or adopted nothing"
        # ... and the first one's Azurite, host and studio carry on, untouched.
        time.sleep(3)
        assert json.loads((settings.state_dir / "azurite" / "azurite.pid").read_text())["pid"] == azurite_pid
        assert Path(f"/proc/{azurite_pid}").exists() and "exited unexpectedly" not in out.text, out.text
        with urllib.request.urlopen(studio + "runs", timeout=10) as page:
            assert page.status == 200
        sheetdrop(env, "drop", "samples/sales-2026-q4.xlsx", "--as", "sales/sales-2026-q4.xlsx", "--wait")
    finally:
        ctrl_c(first)
    assert not port_open(settings.azurite_blob_port)

    # 2. A warm start: the sample is there already, so it is not dropped again; the Q4 data stays
    # the latest; the summary says what this start did, every line in the terminal's width.
    third, out = make_run(env)
    try:
        wait_for(lambda: "watching for new workbooks" in out.text or third.poll() is not None, 120, "the warm run")
        assert third.poll() is None, out.text
        assert "not dropped: input/sales/sales-2026-q3.xlsx is already in this state" in out.text, out.text
        assert "this state: 2 runs, 6 dataset versions" in out.text, out.text
        assert sheetdrop(env, "show", "sales_orders:latest").startswith("sales_orders:2 ")
        assert len(sheetdrop(env, "runs").splitlines()) == 3  # the header, Q4, Q3: no third run
        printed = [line for line in out.text.splitlines() if not re.match(r"\d\d:\d\d:\d\d sheetdrop\.", line)]
        assert all(width(line) <= COLUMNS for line in printed), [line for line in printed if width(line) > COLUMNS]
    finally:
        ctrl_c(third)
