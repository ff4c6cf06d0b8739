"""`sheetdrop rerun`: a version converted again on purpose, as a new attempt of the same version, once per request —
and the backends telling attempts apart when they look for a run after a lost answer."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO, SAMPLE
from sheetdrop.claims import ClaimState
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop.trigger import BlobVersion, claim_store, handle_blob
from sheetdrop_contract import contract
from sheetdrop_local import db, registry, runstore
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings


def sheetdrop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=dict(os.environ))


def put(settings: LocalSettings, name: str, data: bytes) -> BlobVersion:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    etag = container.get_blob_client(name).upload_blob(data, overwrite=True)["etag"]
    return BlobVersion(settings.input_container, name, etag, len(data))


def run_queued(settings: LocalSettings) -> list[runstore.Run]:
    runner = LocalRunner.from_settings(settings)
    ended = []
    while (run := runner.run_next()) is not None:
        ended.append(run)
    return ended


def test_a_version_held_back_by_invalid_options_converts_after_the_fix_without_uploading_again(
        settings: LocalSettings) -> None:
    put(settings, "sales/sheetdrop.json", b'{"header_rows": "two"}')
    version = put(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    assert handle_blob(version).action == "options_invalid"
    assert run_queued(settings) == []
    conn = db.connect(settings.state_dir)
    put(settings, "sales/sheetdrop.json", b'{"header_rows": 1}')  # fixed; the workbook is not touched
    done = sheetdrop("rerun", "--status", "options_invalid")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "attempt 2 is run" in done.stdout and done.stdout.splitlines()[-1] == "rerun: 1 resubmitted", done.stdout
    [second] = run_queued(settings)
    assert (second.status, second.source_attempt) == ("completed", 2), second.error
    assert second.tags[contract.ATTEMPT_TAG] == "2"
    versions = registry.for_run(conn, second.run_id)
    assert {v.name for v in versions} == {"sales_orders", "sales_products", "sales_targets"}
    assert all(v.tags["source_attempt"] == "2" and v.tags["source_etag"] == version.etag for v in versions)
    # The same request again is carried out once: the version is no longer held back, nothing new runs.
    again = sheetdrop("rerun", "--status", "options_invalid")
    assert (again.returncode, again.stdout.strip()) == (
        1, f"nothing to re-run: no options_invalid version under {settings.input_container}/")
    assert runstore.find_by_source(conn, version.container, version.name, version.etag, None) == [second.run_id]


def test_one_rerun_request_made_twice_at_once_makes_one_new_attempt(settings: LocalSettings) -> None:
    bad = put(settings, "misc/broken.xlsx", b"sku,price\nA,1\n")
    handle_blob(bad)
    [failed] = run_queued(settings)
    assert failed.status == "failed"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: sheetdrop("rerun", failed.run_id), range(4)))
    assert sum("attempt 2 is run" in r.stdout for r in results) == 1, [r.stdout for r in results]
    conn = db.connect(settings.state_dir)
    runs = runstore.find_by_source(conn, bad.container, bad.name, bad.etag, None)
    assert len(runs) == 2
    assert [runstore.get(conn, r).source_attempt for r in runs] == [1, 2]


def test_status_picks_the_versions_whose_latest_attempt_ended_so(settings: LocalSettings) -> None:
    good = put(settings, "sales/good.xlsx", SAMPLE.read_bytes())
    bad = put(settings, "sales/bad.xlsx", b"sku,price\nA,1\n")
    other = put(settings, "finance/bad.xlsx", b"sku,price\nA,1\n")
    for version in (good, bad, other):
        handle_blob(version)
    run_queued(settings)
    dry = sheetdrop("rerun", "--prefix", "sales/", "--status", "failed", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines() == [
        f"would re-run {bad.container}/{bad.name} (etag {bad.etag}) after attempt 1 "
        f"({runstore.find_by_source(db.connect(settings.state_dir), bad.container, bad.name, bad.etag)[0]})"]
    done = sheetdrop("rerun", "--prefix", "sales/", "--status", "failed")
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "rerun: 1 resubmitted", done.stdout
    run_queued(settings)  # attempt 2 fails again: it is still the version's latest, and failed
    again = sheetdrop("rerun", "--prefix", "sales/", "--status", "failed", "--dry-run")
    assert "after attempt 2" in again.stdout
    # A version overwritten since is not converted again: its newer version has its own run.
    put(settings, "sales/bad.xlsx", SAMPLE.read_bytes())
    gone = sheetdrop("rerun", "--prefix", "sales/", "--status", "failed")
    assert gone.stdout.splitlines()[-1] == "rerun: 1 superseded", gone.stdout
    nothing = sheetdrop("rerun", "--prefix", "none/")
    assert (nothing.returncode, nothing.stdout.strip()) == (
        1, f"nothing to re-run: no failed version under {settings.input_container}/none/")


def test_a_poisoned_version_is_tried_again_as_its_next_attempt(settings: LocalSettings) -> None:
    version = put(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    claims = claim_store(settings)
    got = claims.acquire(version.container, version.name, version.etag, "inv")
    claim = got.claim  # type: ignore[union-attr]
    for _ in range(settings.claim_max_failures):
        claim = claims.release(claim, "HTTP 403: missing role")
    assert claim.state == ClaimState.POISONED
    done = sheetdrop("rerun", "--status", "poisoned")
    assert done.returncode == 0 and "attempt 2 is run" in done.stdout, done.stdout + done.stderr
    [run] = run_queued(settings)
    assert (run.status, run.source_attempt) == ("completed", 2)
    stored = claims.read(version.container, version.name, version.etag)
    assert stored is not None and (stored.state, stored.run_attempt, stored.rerun_after) == (
        ClaimState.SUBMITTED, 2, [1])


@pytest.mark.parametrize("attempt", [1, 2])
def test_the_v1_backend_finds_the_run_of_one_attempt_only(attempt: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from azureml_standin import AzureMLStandIn
    from loopback import serve
    from sheetdrop.settings import load_settings
    from sheetdrop.submit import SubmitRequest, azureml

    with serve() as service:
        aml = AzureMLStandIn(service)
        for key, value in aml.env().items():
            monkeypatch.setenv(key, value)
        backend = azureml.create(load_settings({**aml.env(), "INPUT_STORAGE__blobServiceUri": "https://x.blob.x"}))
        runs = {n: backend.submit(SubmitRequest("sheetdrop-extract", "sheetdrop_input", "sales/q3.xlsx", "sales", "",
                                                "input", "sales/q3.xlsx", '"0x1"', attempt=n)).run_id for n in (1, 2)}
        assert backend.find_runs("input", "sales/q3.xlsx", '"0x1"', attempt) == [runs[attempt]]
        assert aml.submissions[1].json()["tags"]["source_attempt"] == "2"
        assert "source_attempt" not in aml.submissions[0].json()["tags"]


def test_the_v2_backend_tells_attempts_apart_by_name_key_tags_and_input() -> None:
    from sheetdrop.submit.azureml_v2.client import is_this_version, job_name

    first, second = (job_name("input", "a.xlsx", '"0x1"', n) for n in (1, 2))
    assert first != second
    input_of_second = {"properties": {"inputs": {contract.SOURCE_PARAMETER: {"value": contract.encode_argument(
        contract.source_version("input", "a.xlsx", '"0x1"', 2))}}}}
    tags_of_first = {"properties": {"tags": contract.source_tags("input", "a.xlsx", '"0x1"')}}
    assert is_this_version(input_of_second, "renamed", "input", "a.xlsx", '"0x1"', 2)
    assert not is_this_version(input_of_second, "renamed", "input", "a.xlsx", '"0x1"', 1)
    assert is_this_version(tags_of_first, "renamed", "input", "a.xlsx", '"0x1"', 1)
    assert not is_this_version(tags_of_first, "renamed", "input", "a.xlsx", '"0x1"', 2)
