"""Crash and load: a burst of drops from several threads while the host, a step and Azurite are
each SIGKILLed at a random point. Afterwards every acknowledged blob version has exactly one
completed run or a failed run with a true reason, every dataset version's parquet is in storage,
and no output is left that no dataset version points at.

Real processes throughout: `sheetdrop host --azurite` as a subprocess (it starts Azurite in its own
session), the real step, real Azurite. The seed is printed so that a failure can be replayed
(SHEETDROP_CRASH_SEED). Azurite saves its index every few seconds, so its own SIGKILL is aimed
at the moment outputs and registrations are being written, and drops in its last seconds are not
counted as acknowledged (README, "Reliability").
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

from local_host import host_env, reachable, start_host, stop_azurite, wait_for
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import db, events, registry, runstore
from sheetdrop_local.settings import LocalSettings

DROPS_PER_BURST = 12
DEADLINE = 150.0


def workbook(i: int) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "amount", "note"])
    for row in range(200 + 37 * i):
        sheet.append([row, row * 1.5, f"n{i}-{row}"])
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


class Host:
    """`sheetdrop host --azurite`, started again after each kill."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_host(self.env, self.log)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def pids_running(fragment: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if fragment.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[LocalSettings, Host]]:
    env, settings = host_env(tmp_path / "state")
    host = Host(env, tmp_path / "host.log")
    try:
        yield settings, host
    finally:
        host.stop()
        stop_azurite(settings)


def test_burst_with_the_host_a_step_and_azurite_killed(world: tuple[LocalSettings, Host]) -> None:
    settings, host = world
    seed = int(os.environ.get("SHEETDROP_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"SHEETDROP_CRASH_SEED={seed}")
    host.start()
    service = blob_service(settings.storage)
    wait_for(lambda: reachable(settings), 60, "Azurite")
    container = ensure_container(service, settings.input_container)
    queue = events.events_queue(settings.storage)
    acknowledged: dict[str, str] = {}  # blob name -> the etag storage acknowledged last
    lock = threading.Lock()

    def drop(name: str, data: bytes) -> None:
        blob = container.get_blob_client(name)
        etag = blob.upload_blob(data, overwrite=True)["etag"]
        events.post(queue, events.blob_created("devstoreaccount1", settings.input_container, name, etag,
                                               len(data), blob.url))
        with lock:
            acknowledged[name] = etag

    def burst(names: list[tuple[str, bytes]]) -> None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda item: drop(*item), names))

    figures: dict[str, float] = {}
    # 1. The host is SIGKILLed (with its runner threads and any step) in the middle of a burst.
    first = [(f"team{i % 3}/book{i}.xlsx", workbook(i)) for i in range(DROPS_PER_BURST)]
    killer = threading.Timer(rng.uniform(0.5, 2.5), host.kill)
    killer.start()
    burst(first)
    killer.join()
    host.start()
    restarted = time.monotonic()
    # 2. More drops (overwrites, and two files that are not workbooks), and a step killed mid-run.
    second = [(f"team{i % 3}/book{i}.xlsx", workbook(i + 100)) for i in range(0, DROPS_PER_BURST, 4)]
    second += [(f"late/extra{i}.xlsx", workbook(i + 200)) for i in range(DROPS_PER_BURST - len(second) - 2)]
    second += [("team1/prices.xlsx", b"sku,price\nA,1\n"), ("late/notes.xlsx", b"\x00\x01binary")]
    burst(second)
    time.sleep(rng.uniform(0.0, 0.5))
    figures["step killed after"] = wait_for(lambda: _kill_a_step(settings), 60, "a running step to kill")
    # 3. Azurite is SIGKILLed just after a run completed (its outputs and registrations are the
    #    newest writes), once no drop has been acknowledged for longer than its save interval.
    time.sleep(6)
    conn = db.connect(settings.state_dir)
    wait_for(lambda: _completed_in_the_last(conn, 2.0), 90, "a run completing")
    time.sleep(rng.uniform(0.0, 1.0))
    azurite_pid = json.loads((settings.state_dir / "azurite" / "azurite.pid").read_text())["pid"]
    checks = host.log.read_text().count("had lost files")
    os.kill(azurite_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: host.log.read_text().count("had lost files") > checks, 60,
             "the host to restart Azurite and check outputs")
    figures["Azurite back and outputs checked after"] = time.monotonic() - killed_at

    def all_done() -> bool:
        try:
            return _every_version_ended(conn, settings, acknowledged)
        except Exception:  # storage restarting
            return False

    figures["recovery seconds"] = wait_for(all_done, DEADLINE, "every acknowledged version to end")
    figures["total seconds since the host restart"] = time.monotonic() - restarted

    runs = runstore.list_runs(conn, limit=1000)
    ended = {(r.source_blob, r.source_etag): r for r in runs if r.status in runstore.ENDED}
    completed = [r for r in runs if r.status == "completed"]
    # Exactly one run per acknowledged version; the two non-workbooks failed for the true reason.
    per_version: dict[tuple[str, str], int] = {}
    for run in runs:
        per_version[(run.source_blob, run.source_etag)] = per_version.get((run.source_blob, run.source_etag), 0) + 1
    assert {v: n for v, n in per_version.items() if n != 1} == {}
    for name, etag in acknowledged.items():
        run = ended[(name, etag)]
        if name in ("team1/prices.xlsx", "late/notes.xlsx"):
            assert run.status == "failed" and (run.error or "").startswith("not-a-workbook: "), run.error
        else:
            assert run.status == "completed", (name, run.error)
    # Every dataset version's parquet is there and readable; nothing else is under azureml/.
    output = service.get_container_client(settings.local_output_container)
    versions = registry.list_versions(conn)
    registered = {v.relative_path for v in versions}
    # One dataset version per completed run (one sheet each), none for a failed one.
    assert sorted(v.run_id or "" for v in versions) == sorted(r.run_id for r in completed)
    for version in versions:
        table = pq.read_table(io.BytesIO(output.download_blob(version.relative_path).readall()))
        assert table.num_rows == int(version.tags["rows"])
    # (and each batch run's outcomes file, beside its versions' folders: sheetdrop_contract.batch)
    outcomes = {f"{r.output_path}/outcomes.jsonl" for r in runstore.list_runs(conn, None, as_submitted=True)
                if r.kind == "batch" and r.status == "completed"}
    assert {name for name in output.list_blob_names(name_starts_with="azureml/")} == registered | outcomes
    log = host.log.read_text()
    # Each kill was felt: the restarted host released claims or re-queued runs, the killed step's
    # run was queued again, Azurite was restarted by the host.
    assert "the step was killed by SIGKILL" in log
    assert "Azurite exited unexpectedly; starting it again" in log
    print(f"drops: {len(first) + len(second)}, versions acknowledged: {len(acknowledged)}, kills: host, step, "
          f"Azurite; completed runs: {len(completed)}, lost: 0, duplicated: 0; "
          + ", ".join(f"{k}: {v:.1f} s" for k, v in figures.items()))
    print("\n".join(line for line in log.splitlines()
                    if "again" in line or "lost files" in line or "gave back" in line))


def _kill_a_step(settings: LocalSettings) -> bool:
    for pid in pids_running(f"{settings.state_dir}/runs/"):
        try:
            if b"extract.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
                return True
        except (OSError, ProcessLookupError):
            continue
    return False


def _completed_in_the_last(conn: object, seconds: float) -> bool:
    recent = runstore.completed_since(conn, time.time() - seconds)  # type: ignore[arg-type]
    return bool(recent)


def _every_version_ended(conn: object, settings: LocalSettings, acknowledged: dict[str, str]) -> bool:
    runs = runstore.list_runs(conn, limit=1000)  # type: ignore[arg-type]
    ended = {(r.source_blob, r.source_etag) for r in runs if r.status in runstore.ENDED}
    pending = [r for r in runs if r.status not in runstore.ENDED]
    return not pending and all((name, etag) in ended for name, etag in acknowledged.items())
