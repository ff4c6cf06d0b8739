"""Exactly one run per uploaded file version, under duplicate deliveries, crashes, service faults
and hostile names. Real Azurite, the real function, real processes; the AzureML stand-in on
loopback where the cloud backend is exercised."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from azureml_standin import TOKEN, AzureMLStandIn
from clock import FakeClock
from conftest import REPO, SAMPLE
from loopback import serve
from sheetdrop.claims import RELEASED_RETRY_AFTER, ClaimState
from sheetdrop.settings import get_settings
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop.submit import SubmitError
from sheetdrop.trigger import claim_store
from sheetdrop_contract import contract
from sheetdrop_local import backend, cli, db, registry, runstore
from sheetdrop_local.azurite import AZURITE_KEY, Azurite, free_port
from sheetdrop_local.devhost import MAX_RETRY_DELAY, DevHost
from sheetdrop_local.functions_host import DevContext, blob_client_argument, indexed_trigger
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings, load_local_settings


@pytest.fixture
def aml(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureMLStandIn]:
    with serve() as service:
        standin = AzureMLStandIn(service)
        for key, value in standin.env().items():
            monkeypatch.setenv(key, value)
            env[key] = value
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT", "MSI_SECRET"):
            monkeypatch.delenv(name, raising=False)
        get_settings.cache_clear()
        yield standin


def upload(settings: LocalSettings, name: str, data: bytes) -> str:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    return container.get_blob_client(name).upload_blob(data, overwrite=True)["etag"]


def deliver(settings: LocalSettings, name: str, invocation_id: str = "inv") -> None:
    """One delivery of the blob-created event: the real function with a real BlobClient."""
    trigger = indexed_trigger()
    client = blob_client_argument(trigger, settings.input_container, name)
    trigger.user_function(client=client, context=DevContext(trigger.function_name, invocation_id))


def run_count(settings: LocalSettings, aml: AzureMLStandIn | None) -> int:
    if aml is not None:
        return len(aml.runs)
    return len(runstore.list_runs(db.connect(settings.state_dir)))


@pytest.fixture(params=["local", "azureml"])
def backend_kind(request: pytest.FixtureRequest, env: dict[str, str]) -> Iterator[AzureMLStandIn | None]:
    if request.param == "local":
        yield None
    else:
        yield request.getfixturevalue("aml")


def current_settings() -> LocalSettings:
    """Settings as the environment has them now, with the local backend installed for them."""
    get_settings.cache_clear()
    local = load_local_settings()
    backend.install(local)
    return local


# -- duplicates ---------------------------------------------------------------------------------------


def test_fifty_concurrent_deliveries_of_one_version_make_one_run(backend_kind: AzureMLStandIn | None) -> None:
    settings = current_settings()
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    barrier = threading.Barrier(50, timeout=60)

    def one(i: int) -> None:
        trigger = indexed_trigger()
        client = blob_client_argument(trigger, settings.input_container, "sales/q3.xlsx")
        barrier.wait(timeout=60)
        trigger.user_function(client=client, context=DevContext(trigger.function_name, f"inv-{i}"))

    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(one, range(50)))  # any exception in an invocation fails the test here
    assert run_count(settings, backend_kind) == 1
    if backend_kind is not None:
        assert len(backend_kind.submissions) == 1


def other_workbook() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["region", "amount"])
    book.active.append(["North", 125])
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def test_new_content_is_new_work_and_a_repeated_event_is_not(backend_kind: AzureMLStandIn | None) -> None:
    settings = current_settings()
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    deliver(settings, "sales/q3.xlsx")
    deliver(settings, "sales/q3.xlsx")  # the same event again, after success
    assert run_count(settings, backend_kind) == 1
    upload(settings, "sales/q3.xlsx", other_workbook())  # re-uploaded with new content: a new etag
    deliver(settings, "sales/q3.xlsx")
    deliver(settings, "sales/q3.xlsx")
    assert run_count(settings, backend_kind) == 2


# -- service faults -----------------------------------------------------------------------------------


def test_transient_submit_failures_are_retried_into_one_run(aml: AzureMLStandIn) -> None:
    settings = current_settings()
    aml.submit_failures = [(503, {"Retry-After": "0"}, {"error": {"message": "busy"}})] * 2
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    deliver(settings, "sales/q3.xlsx")
    assert len(aml.submissions) == 3 and len(aml.runs) == 1


def test_a_submission_whose_answer_was_lost_is_not_sent_again(aml: AzureMLStandIn) -> None:
    settings = current_settings()
    aml.lose_answers = 1  # the service starts the run; the connection drops before the answer
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    deliver(settings, "sales/q3.xlsx")
    deliver(settings, "sales/q3.xlsx")
    assert len(aml.submissions) == 1 and len(aml.runs) == 1


def test_a_lost_answer_makes_no_second_run_when_the_service_drops_tags_but_the_step_started(
        aml: AzureMLStandIn) -> None:
    settings = current_settings()
    aml.ignore_tags = True
    aml.steps_start_at_once = True  # compute was warm: the step tagged the run before the resend
    aml.lose_answers = 1
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    deliver(settings, "sales/q3.xlsx")
    deliver(settings, "sales/q3.xlsx")
    assert len(aml.submissions) == 1 and len(aml.runs) == 1


def test_the_documented_window_a_queued_run_without_tags(aml: AzureMLStandIn) -> None:
    """docs/azureml.md, "Submission body": if the service drops the tags and the run is still queued,
    run history cannot tell that the lost answer's run exists; the resend makes a second run. The
    claim bounds it to this one resend inside one invocation."""
    settings = current_settings()
    aml.ignore_tags = True
    aml.lose_answers = 1
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    deliver(settings, "sales/q3.xlsx")
    deliver(settings, "sales/q3.xlsx")  # the claim is submitted: no further submission
    assert len(aml.submissions) == 2 and len(aml.runs) == 2
    for run in aml.runs:
        aml.start_step(run["runId"])
    assert {run["tags"]["source_blob"] for run in aml.runs} == {"sales/q3.xlsx"}


def test_forbidden_releases_the_claim_and_the_next_delivery_submits(aml: AzureMLStandIn) -> None:
    settings = current_settings()
    aml.submit_failures = [(403, {}, {"error": {"code": "AuthorizationFailed", "message": "no role"}})]
    etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    with pytest.raises(SubmitError, match="missing role") as failure:
        deliver(settings, "sales/q3.xlsx")
    assert TOKEN not in str(failure.value)
    claim = claim_store(settings).read(settings.input_container, "sales/q3.xlsx", etag)
    assert claim is not None and claim.state == ClaimState.RELEASED and "missing role" in (claim.last_error or "")
    assert len(aml.submissions) == 1 and aml.runs == []
    deliver(settings, "sales/q3.xlsx")  # the host's retry
    assert len(aml.submissions) == 2 and len(aml.runs) == 1
    claim = claim_store(settings).read(settings.input_container, "sales/q3.xlsx", etag)
    assert claim is not None and claim.state == ClaimState.SUBMITTED and claim.run_id == aml.runs[0]["runId"]


def test_a_version_that_always_fails_is_poisoned_and_left_untouched(aml: AzureMLStandIn) -> None:
    settings = current_settings()
    aml.always_fail_with = (400, {}, {"error": {"code": "BadRequest", "message": "Pipeline parameter missing"}})
    data = SAMPLE.read_bytes()
    etag = upload(settings, "sales/q3.xlsx", data)
    host = DevHost(settings, clock=FakeClock())
    for _ in range(settings.claim_max_failures + 2):
        host.scan_once()
        host.clock.advance(MAX_RETRY_DELAY)  # type: ignore[attr-defined]
    assert len(aml.submissions) == settings.claim_max_failures  # no retry after poisoning
    claim = claim_store(settings).read(settings.input_container, "sales/q3.xlsx", etag)
    assert claim is not None and claim.state == ClaimState.POISONED and "HTTP 400" in (claim.last_error or "")
    blob = blob_service(settings.storage).get_blob_client(settings.input_container, "sales/q3.xlsx")
    assert blob.get_blob_properties().etag == etag and blob.download_blob().readall() == data
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["runs", "--json"]) == 0
    [listed] = [r for r in json.loads(out.getvalue()) if r["status"] == "poisoned"]
    assert listed["source_blob"] == "sales/q3.xlsx" and "HTTP 400" in listed["error"]
    # A new upload is new work.
    aml.always_fail_with = None
    upload(settings, "sales/q3.xlsx", data)
    host.scan_once()
    assert len(aml.runs) == 1


# -- crashes ------------------------------------------------------------------------------------------

CRASHING_WORKER = """
import os, sys, time
from sheetdrop.submit.backends import get_backend
from sheetdrop.trigger import BlobVersion, handle_blob
from sheetdrop_local import backend
from sheetdrop_local.settings import load_local_settings

mode, name, etag = sys.argv[1:4]
settings = load_local_settings()
backend.install(settings)
real = get_backend(settings)

class DiesMidway:
    def submit(self, request):
        if mode == "before-submit":
            print("claimed", flush=True)
            time.sleep(600)
        result = real.submit(request)
        print("submitted", flush=True)
        time.sleep(600)

    def find_runs(self, *args):
        return real.find_runs(*args)

handle_blob(BlobVersion(os.environ["INPUT_CONTAINER"], name, etag, 1000), invocation_id="doomed",
            backend=DiesMidway())
"""


def kill_worker_midway(mode: str, name: str, etag: str) -> None:
    """Run the real trigger logic in a child process and SIGKILL it where ``mode`` says: right
    after it claimed the version, or right after its submission reached the service."""
    worker = subprocess.Popen([sys.executable, "-c", CRASHING_WORKER, mode, name, etag],
                              stdout=subprocess.PIPE, text=True, cwd=REPO, env=dict(os.environ))
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == ("claimed" if mode == "before-submit" else "submitted")
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)


def function_claims_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Give the claim store the Function uses in this process a clock the test moves."""
    clock = FakeClock()
    monkeypatch.setattr(claim_store(get_settings()), "clock", clock)
    return clock


def past_the_stale_bound(clock: FakeClock, settings: LocalSettings) -> None:
    """Move the clock past the stale bound of a claim the killed worker wrote with the wall clock: from now,
    not from when the clock was made (starting the worker takes seconds on a busy machine)."""
    clock.now = max(clock.now, time.time())
    clock.advance(settings.claim_stale_seconds + 1)


@pytest.mark.parametrize("mode", ["before-submit", "after-submit"])
def test_a_killed_worker_leaves_exactly_one_run(mode: str, backend_kind: AzureMLStandIn | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = current_settings()
    clock = function_claims_clock(monkeypatch)
    etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    kill_worker_midway(mode, "sales/q3.xlsx", etag)
    runs_before = run_count(settings, backend_kind)
    assert runs_before == (1 if mode == "after-submit" else 0)

    deliver(settings, "sales/q3.xlsx", "early")  # within the bound: the claim is still respected
    assert run_count(settings, backend_kind) == runs_before
    past_the_stale_bound(clock, settings)
    deliver(settings, "sales/q3.xlsx", "late")  # after the bound: exactly one delivery takes over
    deliver(settings, "sales/q3.xlsx", "later")
    assert run_count(settings, backend_kind) == 1
    claim = claim_store(settings).read(settings.input_container, "sales/q3.xlsx", etag)
    assert claim is not None and claim.state == ClaimState.SUBMITTED


def test_the_timer_function_redelivers_an_abandoned_claim(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = current_settings()
    clock = function_claims_clock(monkeypatch)
    etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    kill_worker_midway("before-submit", "sales/q3.xlsx", etag)
    host = DevHost(settings)
    host.scan_once()  # the event arrives while the claim is fresh: declined, receipt written
    assert run_count(settings, None) == 0
    past_the_stale_bound(clock, settings)
    host.run_timer()  # the app's timer function, as the host runs it on its schedule
    assert run_count(settings, None) == 1
    host.run_timer()
    assert run_count(settings, None) == 1


SLOW_STEP = """#!/bin/sh
# The step's interpreter; once the step is done (it read its input), a pause in which the test stops storage.
"{python}" "$@"
done=$?
touch "{flag}"
sleep 2
exit $done
"""


def test_a_released_claim_nobody_retries_is_swept_until_it_runs(aml: AzureMLStandIn,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = current_settings()
    clock = function_claims_clock(monkeypatch)
    aml.submit_failures = [(403, {}, {"error": {"code": "AuthorizationFailed", "message": "no role yet"}})]
    etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    with pytest.raises(SubmitError):
        deliver(settings, "sales/q3.xlsx")  # the only delivery there will be (say, the sweep's own)
    host = DevHost(settings)
    host.run_timer()  # released a moment ago: the host's retries may still come; not yet
    assert aml.runs == []
    clock.advance(RELEASED_RETRY_AFTER + 1)
    host.run_timer()
    assert len(aml.runs) == 1
    claim = claim_store(settings).read(settings.input_container, "sales/q3.xlsx", etag)
    assert claim is not None and claim.state == ClaimState.SUBMITTED


def test_an_abandoned_claim_of_an_overwritten_blob_is_superseded(env: dict[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    settings = current_settings()
    clock = function_claims_clock(monkeypatch)
    etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    kill_worker_midway("before-submit", "sales/q3.xlsx", etag)
    upload(settings, "sales/q3.xlsx", other_workbook())  # the new version has its own event
    past_the_stale_bound(clock, settings)
    DevHost(settings).run_timer()
    claim = claim_store(settings).read(settings.input_container, "sales/q3.xlsx", etag)
    assert claim is not None and claim.state == ClaimState.SUPERSEDED and "overwritten" in (claim.last_error or "")
    conn = db.connect(settings.state_dir)
    assert runstore.find_by_source(conn, settings.input_container, "sales/q3.xlsx", etag) == []  # the old is not run
    # The new version's event never came in this test, and by the claims' clock it was written 15 minutes ago:
    # the same sweep's reconciliation delivered it (once).
    assert run_count(settings, None) == 1
    assert list(claim_store(settings).list(ClaimState.SUBMITTING)) == []


@pytest.mark.parametrize("phase", ["before-the-step-reads", "during-step"])
def test_storage_restarted_during_a_local_run_loses_nothing_and_runs_once(
        phase: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ServiceRequestError

    storage = Azurite(location=tmp_path / "azurite-own", blob_port=free_port(), queue_port=free_port(),
                      table_port=free_port()).start()
    try:
        monkeypatch.setenv("INPUT_STORAGE", storage.connection_string)
        monkeypatch.setenv("STORAGE_RETRY_TOTAL", "0")
        started_flag = tmp_path / "step-started"
        settings = current_settings()
        host = DevHost(settings)  # its own storage: watched from now on
        upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
        assert host.scan_once() == 1
        runner = LocalRunner.from_settings(settings)
        runner.requeue_delay = 0
        if phase == "before-the-step-reads":
            storage.stop()
            run = runner.run_next()
        else:  # storage goes away while the step runs: its read worked, the upload after it fails
            wrapper = tmp_path / "slow-python"
            wrapper.write_text(SLOW_STEP.format(python=sys.executable, flag=started_flag))
            wrapper.chmod(0o755)
            runner.python = str(wrapper)
            result: list[runstore.Run | None] = []
            worker = threading.Thread(target=lambda: result.append(runner.run_next()))
            worker.start()
            deadline = time.monotonic() + 30
            while not started_flag.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            storage.stop()
            worker.join(60)
            run = result[0]
            runner.python = sys.executable
        assert run is not None and run.status == "queued" and "storage unreachable" in (run.error or "")
        # Meanwhile the host's scans fail (its watch loop logs and goes on); nothing is receipted.
        with pytest.raises(ServiceRequestError):
            host.scan_once()
        storage.start()  # same folder: the data survived
        run = runner.run_next()
        assert run is not None and run.status == "completed" and run.attempts == 2 and run.error is None
        assert runner.run_next() is None
        assert host.scan_once() == 0  # nothing missed, nothing delivered twice
        conn = db.connect(settings.state_dir)
        assert len(runstore.list_runs(conn)) == 1
        assert [v.version for v in registry.list_versions(conn, "sales_orders")] == [1]
    finally:
        storage.stop()


# -- names --------------------------------------------------------------------------------------------

HOSTILE = [
    " leading and trailing spaces .xlsx",
    "sales/Q1 report #1 (final) 100%.xlsx",
    "sales/a+b?c=d&e.xlsx",
    "données/été 2026 ✓ 数据.xlsx",
    "deep/" + "/".join(f"level{i}" for i in range(40)) + "/book.xlsx",
    "long/" + "n" * 1000 + ".xlsx",
    "sales/..../dots.xlsx",
    "sales/%2e%2e/percent-dots.xlsx",
]
#: What a shell would make something of: quotes of both kinds, $ and its expansions, command substitution,
#: separators, redirections, globs, a comment, history and tilde expansion.
SHELL_HOSTILE = [
    "sales/o'brien's $HOME ${PATH} $(touch pwned) `id` #x %s (1) ;|&<>*?[a]~!\".xlsx",
    "--dash/-leading.xlsx",
]


#: The storage and path rules are the same for both step APIs; the shell's are checked for each.
NAME_CASES = [(name, "azureml") for name in HOSTILE] + [(name, api) for name in SHELL_HOSTILE
                                                        for api in ("azureml", "azureml-v2")]


@pytest.mark.parametrize(("name", "step_api"), NAME_CASES, ids=[f"{i}-{api}" for i, (_, api) in enumerate(NAME_CASES)])
def test_hostile_blob_names_round_trip(name: str, step_api: str, env: dict[str, str], tmp_path: Path) -> None:
    settings = load_local_settings({**env, "LOCAL_STEP_API": step_api})
    backend.install(settings)
    assert len(name.encode()) <= 1024
    etag = upload(settings, name, SAMPLE.read_bytes())
    stored = [b.name for b in blob_service(settings.storage).get_container_client(settings.input_container)
              .list_blobs()]
    assert stored == [name], "the storage kept the name as given"
    host = DevHost(settings)
    assert host.scan_once() == 1
    run = LocalRunner.from_settings(settings).run_next()
    assert run is not None and run.status == "completed", run.error
    assert (run.source_blob, run.source_etag, run.relative_path) == (name, etag, name)
    versions = registry.list_versions(db.connect(settings.state_dir))
    assert {v.tags["source_blob"] for v in versions} == {name}
    assert DevHost(settings).scan_once() == 0, "a restarted host knows this version by its receipt"
    table = registry.load_table(versions[0], blob_service(settings.storage), settings.local_output_container)
    assert table.num_rows > 0
    # No blob name became a path: the step's argv carries it encoded, every value one word; nothing ran it.
    argv = Path(run.log_path or "").read_text(encoding="utf-8").splitlines()[0].split(" ")[2:]
    assert contract.parse_source_version(contract.parse_step_arguments(argv).source_version)["source_blob"] == name
    assert not (tmp_path / "pwned").exists()
    state = settings.state_dir.resolve()
    for path in (settings.state_dir / "runs").rglob("*"):
        assert path.resolve().is_relative_to(state)


# -- secrets ------------------------------------------------------------------------------------------


def test_no_key_sas_or_token_reaches_logs_tags_or_errors(aml: AzureMLStandIn, caplog: pytest.LogCaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    settings = current_settings()
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    deliver(settings, "sales/q3.xlsx")  # cloud path: token requested and sent
    aml.always_fail_with = (403, {}, {"error": {"message": "denied"}})
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    with pytest.raises(SubmitError) as refused:
        deliver(settings, "sales/q3.xlsx")
    # And the local path end to end, with its run log and registry.
    monkeypatch.setenv("SHEETDROP_BACKEND", "local")
    local = current_settings()
    upload(local, "team/q4.xlsx", SAMPLE.read_bytes())
    DevHost(local).scan_once()
    run = LocalRunner.from_settings(local).run_next()
    assert run is not None and run.status == "completed"

    conn = db.connect(local.state_dir)
    texts = [caplog.text, str(refused.value), repr(local), repr(settings),
             Path(run.log_path or "").read_text(encoding="utf-8"),
             json.dumps([r.as_dict() for r in runstore.list_runs(conn)]),
             json.dumps([v.as_dict() for v in registry.list_versions(conn)]),
             json.dumps([c.body() for c in claim_store(settings).list()]),
             json.dumps([r["tags"] for r in aml.runs])]
    assert caplog.records, "logging was captured"
    for text in texts:
        for secret in (AZURITE_KEY, "AccountKey=", "sig=", TOKEN, "Bearer "):
            assert secret not in text
