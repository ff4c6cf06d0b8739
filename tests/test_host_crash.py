"""What a crashed dev host leaves: Azurite keeps running with everything it acknowledged (the next
host adopts it), and the claims the dead host held are finished within seconds, not after
CLAIM_STALE_SECONDS. Real processes: `sheetdrop host --azurite`, SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE
from local_host import host_env, reachable, start_host, stop_azurite, wait_for
from sheetdrop.claims import ClaimState
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop.trigger import claim_store
from sheetdrop_local import backend, db, recovery, runstore
from sheetdrop_local.azurite import port_open
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.settings import LocalSettings


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[dict[str, str], LocalSettings]]:
    env, settings = host_env(tmp_path / "state")
    yield env, settings
    stop_azurite(settings)


def test_azurite_outlives_a_killed_host_with_what_it_acknowledged(local: tuple[dict[str, str], LocalSettings],
                                                                  tmp_path: Path) -> None:
    env, settings = local
    host = start_host(env, tmp_path / "host.log")
    wait_for(lambda: reachable(settings), 60, "Azurite")
    container = ensure_container(blob_service(settings.storage), "uploads")
    etags = {}
    for i in range(5):
        etags[f"f{i}.bin"] = container.get_blob_client(f"f{i}.bin").upload_blob(os.urandom(1000))["etag"].strip('"')
    os.killpg(host.pid, signal.SIGKILL)  # the host and everything in its group; not Azurite's session
    host.wait()
    azurite_pid = json.loads((settings.state_dir / "azurite" / "azurite.pid").read_text())["pid"]
    assert Path(f"/proc/{azurite_pid}").exists()
    host = start_host(env, tmp_path / "host.log")
    try:
        wait_for(lambda: "Azurite adopted from a previous host" in (tmp_path / "host.log").read_text(), 60,
                 "the new host to adopt Azurite")
        assert {b.name: b.etag.strip('"') for b in container.list_blobs()} == etags
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(60)
    # A deliberate stop ends Azurite too, after it saved.
    assert not Path(f"/proc/{azurite_pid}").exists() or "Z" in Path(f"/proc/{azurite_pid}/stat").read_text()


def test_a_restarted_host_finishes_what_its_dead_predecessor_claimed_at_once(settings: LocalSettings) -> None:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    etag = container.get_blob_client("sales/q3.xlsx").upload_blob(SAMPLE.read_bytes())["etag"]
    # A host of this state folder claimed the version and died before submitting (the claim stays
    # 'submitting'); CLAIM_STALE_SECONDS is the default 15 minutes.
    dead = f"{recovery.invocation_prefix(settings.state_dir)}deadbeef-0001"
    claims = claim_store(settings)
    claims.acquire(settings.input_container, "sales/q3.xlsx", etag, dead)
    backend.install(settings)
    started = time.monotonic()
    with DevHost(settings, poll_interval=0.2).running():
        conn = db.connect(settings.state_dir)
        wait_for(lambda: any(r.status == "completed" for r in runstore.list_runs(conn)), 30, "the run")
    assert time.monotonic() - started < 30 < settings.claim_stale_seconds
    claim = claims.read(settings.input_container, "sales/q3.xlsx", etag)
    assert claim is not None and claim.state == ClaimState.SUBMITTED and claim.failures == 0


def test_claims_of_another_state_folders_host_are_left_alone(settings: LocalSettings, tmp_path: Path) -> None:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    etag = container.get_blob_client("sales/q3.xlsx").upload_blob(SAMPLE.read_bytes())["etag"]
    other = f"{recovery.invocation_prefix(tmp_path / 'elsewhere')}cafe0000-0001"
    claims = claim_store(settings)
    claims.acquire(settings.input_container, "sales/q3.xlsx", etag, other)
    assert recovery.release_predecessors_claims(claims, recovery.invocation_prefix(settings.state_dir), "x") == 0
    claim = claims.read(settings.input_container, "sales/q3.xlsx", etag)
    assert claim is not None and claim.state == ClaimState.SUBMITTING


def test_ctrl_c_stops_a_host_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A shell without job control (a CI job's `make test &`) starts a background command with SIGINT
    ignored, and Python leaves it so: on b5e30cf such a host never stopped on Ctrl-C, nor its Azurite."""
    env, settings = host_env(tmp_path / "state")
    with open(tmp_path / "host.log", "ab") as out:
        host = subprocess.Popen([sys.executable, "-m", "sheetdrop_local.cli", "host", "--azurite"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        wait_for(lambda: "watching container" in (tmp_path / "host.log").read_text() or host.poll() is not None, 60,
                 "the host")
        os.killpg(host.pid, signal.SIGINT)
        assert host.wait(60) == 0
        assert not port_open(settings.azurite_blob_port)
    finally:
        if host.poll() is None:
            host.kill()
        stop_azurite(settings)
