"""`sheetdrop backfill`: what was in the container before anything watched it, converted once per version —
racing live events, after a backfill killed midway, and as `--dry-run`, `--prefix`, `--since` say.

Real Azurite, the real trigger and claims, the local backend's run store; the backfill is the CLI in its own
process, as a person runs it."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, SAMPLE
from local_host import wait_for
from sheetdrop.claims import ClaimState
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop.trigger import BlobVersion, claim_store
from sheetdrop_local import backfill, db, events, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.settings import LocalSettings


def sheetdrop(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=dict(os.environ))


def already_there(settings: LocalSettings, count: int, folder: str = "sales") -> dict[str, str]:
    """Workbooks written before anything watched the container: name -> etag."""
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    data = SAMPLE.read_bytes()
    return {name: container.get_blob_client(name).upload_blob(data, overwrite=True)["etag"]
            for name in (f"{folder}/book{i:03d}.xlsx" for i in range(count))}


def runs_per_version(settings: LocalSettings, versions: dict[str, str]) -> dict[str, int]:
    conn = db.connect(settings.state_dir)
    return {name: len(runstore.find_by_source(conn, settings.input_container, name, etag))
            for name, etag in versions.items()}


@pytest.fixture
def unwatched(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> LocalSettings:
    """Settings on a container nothing has watched yet (the env fixture's is watched from the test's start)."""
    from sheetdrop.settings import get_settings
    from sheetdrop_local import backend
    from sheetdrop_local.settings import load_local_settings

    monkeypatch.setenv("INPUT_CONTAINER", f"{env['INPUT_CONTAINER']}-old")
    get_settings.cache_clear()
    settings = load_local_settings()
    backend.install(settings)
    return settings


def test_backfill_racing_late_events_makes_one_run_per_version(unwatched: LocalSettings) -> None:
    settings = unwatched
    versions = already_there(settings, 12)
    host = DevHost(settings, poll_interval=0.05)  # it starts watching now: these blobs are not its to announce
    queue = events.events_queue(settings.storage)
    # Their events arrive after all (say, a subscription made late), while the backfill delivers them too.
    for name, etag in versions.items():
        events.post(queue, events.blob_created("devstoreaccount1", settings.input_container, name, etag, 1, ""))
    proc = subprocess.Popen([sys.executable, "-m", "sheetdrop_local.cli", "backfill", "--max-in-flight", "0"],
                            cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    planned = proc.stdout.readline()  # the backfill has listed: both now deliver the same versions
    with host.running():
        rest, _ = proc.communicate(timeout=300)
        conn = db.connect(settings.state_dir)

        def all_ended() -> bool:
            runs = runstore.list_runs(conn, None)
            return len(runs) >= len(versions) and all(run.status in runstore.ENDED for run in runs)

        wait_for(all_ended, 180, "every run to end")
    assert proc.returncode == 0, planned + rest
    assert planned.startswith(f"{len(versions)} blobs under {settings.input_container}/ in ") and \
        f"{len(versions)} versions to convert" in planned
    assert rest.strip().splitlines()[-1].startswith(f"backfill: {len(versions)} of {len(versions)} delivered")
    assert runs_per_version(settings, versions) == dict.fromkeys(versions, 1)
    assert {run.status for run in runstore.list_runs(db.connect(settings.state_dir), None)} == {"completed"}


def test_a_dry_run_counts_and_starts_nothing_and_the_window_filters(settings: LocalSettings) -> None:
    versions = already_there(settings, 3)
    container = blob_service(settings.storage).get_container_client(settings.input_container)
    container.get_blob_client("sales/notes.txt").upload_blob(b"not a workbook")
    time.sleep(1.1)  # last-modified times have whole seconds
    cutoff = time.time()
    later = already_there(settings, 2, folder="finance")
    dry = sheetdrop("backfill", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0].startswith("6 blobs under ")
    assert "5 versions to convert" in dry.stdout and "1 not workbooks" in dry.stdout
    assert dry.stdout.splitlines()[-1] == "would start up to 5 local runs on the local backend"
    assert runs_per_version(settings, {**versions, **later}) == dict.fromkeys({**versions, **later}, 0)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cutoff))
    only_new = sheetdrop("backfill", "--since", since)
    assert only_new.returncode == 0, only_new.stdout + only_new.stderr
    assert runs_per_version(settings, later) == dict.fromkeys(later, 1)
    assert runs_per_version(settings, versions) == dict.fromkeys(versions, 0)
    folder = sheetdrop("backfill", "--prefix", "sales/")
    assert folder.returncode == 0 and "3 versions to convert" in folder.stdout, folder.stdout
    assert runs_per_version(settings, {**versions, **later}) == dict.fromkeys({**versions, **later}, 1)
    assert sheetdrop("backfill", "--dry-run").stdout.splitlines()[-1] == "nothing to do"
    bad = sheetdrop("backfill", "--since", "last week")
    assert (bad.returncode, bad.stderr.strip()) == (2, "error: usage: --since 'last week' is not a date or date and "
                                                        "time (2026-11-30, 2026-11-30T08:00)")


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("submitted", [False, True])
def test_a_claim_left_by_a_killed_backfill_is_taken_back_without_a_second_run(
        settings: LocalSettings, submitted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_THRESHOLD", "0")  # one version on its own (a batch's takeover: test_batching.py)
    (name, etag), = already_there(settings, 1).items()
    claims = claim_store(settings)
    # What a backfill killed between its claim and its bookkeeping leaves: the claim in `submitting`, held by
    # an invocation of a process that is gone; and (after the submission reached the backend) its run.
    got = claims.acquire(settings.input_container, name, etag, backfill.invocation_id(pid=_gone_pid()))
    assert got.__class__.__name__ == "Acquired"
    if submitted:
        from sheetdrop.submit.backends import get_backend
        from sheetdrop.trigger import build_request

        get_backend(settings).submit(build_request(BlobVersion(settings.input_container, name, etag, 1), settings,
                                                   None, "sales"))
    done = sheetdrop("backfill")
    assert done.returncode == 0, done.stdout + done.stderr
    assert runs_per_version(settings, {name: etag}) == {name: 1}
    assert f"1 {'recovered' if submitted else 'submitted'}" in done.stdout
    claim = claims.read(settings.input_container, name, etag)
    assert claim is not None and claim.state == ClaimState.SUBMITTED


def test_a_backfill_killed_midway_resumes_and_converts_each_version_once(
        settings: LocalSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_SIZE", "5")  # a backfill goes in batches: eight of them, so it can be cut midway
    versions = already_there(settings, 40)
    proc = subprocess.Popen([sys.executable, "-m", "sheetdrop_local.cli", "backfill", "--max-in-flight", "0"],
                            cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = db.connect(settings.state_dir)
    wait_for(lambda: len(runstore.list_runs(conn, None)) >= 5, 120, "the backfill to be under way")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 5 <= len(runstore.list_runs(conn, None)) < len(versions)
    resumed = sheetdrop("backfill", "--max-in-flight", "0")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert runs_per_version(settings, versions) == dict.fromkeys(versions, 1)
    assert sheetdrop("backfill", "--dry-run").stdout.splitlines()[-1] == "nothing to do"


def test_progress_says_counts_rate_and_time_left() -> None:
    ticks = iter([0.0, 10.0])
    progress = backfill.Progress(total=40, clock=lambda: next(ticks))
    for _ in range(8):
        progress.count("submitted")
    progress.count("already claimed")
    progress.count("already claimed")
    assert progress.line() == ("backfill: 10 of 40 delivered (2 already claimed, 8 submitted), 1.0 a second, "
                               "about 30 s left")


def test_the_pace_waits_for_unfinished_runs(settings: LocalSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from sheetdrop.settings import get_settings

    monkeypatch.setenv("BATCH_THRESHOLD", "0")  # versions on their own: the pace counts runs
    get_settings.cache_clear()
    settings = dataclasses.replace(settings, batch_threshold=0)
    versions = already_there(settings, 3)
    container = blob_service(settings.storage).get_container_client(settings.input_container)
    claims = claim_store(settings)
    planned = backfill.plan(container, claims)
    asked: list[list[str]] = []

    def ended(run_ids: list[str]) -> set[str]:
        asked.append(list(run_ids))
        return set(run_ids) if len(asked) % 3 == 0 else set()  # the open run ends at every third look

    from sheetdrop.submit.backends import get_backend

    progress = backfill.run(planned, settings, claims, get_backend(settings), max_in_flight=1, out=io.StringIO(),
                            ended=ended, sleep=lambda _: None)
    assert progress.counts == {"submitted": 3}
    assert runs_per_version(settings, versions) == dict.fromkeys(versions, 1)
    # Before the second and the third submission it looked until the one open run had ended, and only at it.
    assert [len(ids) for ids in asked] == [1, 1, 1, 1, 1, 1]


def test_progress_is_printed_while_it_delivers(settings: LocalSettings) -> None:
    already_there(settings, 3)
    container = blob_service(settings.storage).get_container_client(settings.input_container)
    claims = claim_store(settings)
    from sheetdrop.submit.backends import get_backend

    out = io.StringIO()
    backfill.run(backfill.plan(container, claims), settings, claims, get_backend(settings), max_in_flight=0, out=out,
                 every=0)
    lines = out.getvalue().splitlines()
    # A line after each delivery (every=0), then the last one once the batch has gone.
    assert [line.split(" delivered")[0] for line in lines[:3]] == [f"backfill: {n} of 3" for n in (1, 2, 3)]
    assert "batched" in lines[-1] and len(lines) == 4, lines
