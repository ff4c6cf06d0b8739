"""`sheetdrop smoke` against a v1 deployment on loopback, and every way it can fail to find what it looks for.

What stands in (each behaviour cited or listed where it is simulated):
- azd: a stand-in `azd` on PATH printing `azd env get-values` as azd does (``KEY="value"`` lines);
- the Azure CLI login: a stand-in `az` answering ``az account get-access-token --resource R`` in the JSON
  azure-identity's AzureCliCredential parses, a token per audience (storage, ARM for v1's API and for ARM itself,
  Log Analytics), or az's "Please run 'az login'" when logged out;
- storage: Azurite over HTTPS taking bearer tokens (tests/test_backfill_azure.py), holding the input and claims
  containers and the container that plays workspaceblobstore;
- the deployed Function and Event Grid: a thread that finds the smoke's uploads and calls the Function's own
  ``handle_blob`` with the v1 backend (its managed identity served by the stand-in), then runs the step;
- AzureML v1: tests/smoke_v1_workspace.py; Log Analytics: tests/loganalytics_standin.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from azureml_standin import ENDPOINT_ID, RESOURCE_GROUP, SUBSCRIPTION, TOKEN, WORKSPACE
from conftest import REPO
from loganalytics_standin import TOKEN as LOGS_TOKEN
from loganalytics_standin import WORKSPACE_ID, LogAnalytics
from loopback import serve
from sheetdrop_local.azurite import AZURITE_KEY
from smoke_output import items
from smoke_v1_workspace import ARM_TOKEN, OUTPUT_CONTAINER, V1Workspace
from test_backfill_azure import TENANT, _jwt, https_azurite  # noqa: F401  (a fixture)

AZ = """#!{python}
import json, os, sys, time
if os.path.exists({logged_out!r}):
    sys.exit("ERROR: Please run 'az login' to setup account.")
resource = sys.argv[sys.argv.index("--resource") + 1]
tokens = {tokens!r}
if resource not in tokens:
    sys.exit("ERROR: no token for " + resource)
print(json.dumps({{"accessToken": tokens[resource], "expires_on": int(time.time()) + 3600, "tokenType": "Bearer"}}))
"""
AZD = """#!{python}
import sys
if sys.argv[1:] != ["env", "get-values"]:
    sys.exit("the azd stand-in answers `azd env get-values` only")
print(open({values!r}).read(), end="")
"""


@dataclass
class Deployment:
    """A v1 deployment on loopback, and what the smoke test is run with."""

    workspace: V1Workspace
    logs: LogAnalytics
    env: dict[str, str]
    bin: Path
    args: list[str]
    input: object
    function_on: threading.Event
    #: Log Analytics ingests what the Function and the workspace log (off: the workbook's query finds nothing).
    logs_on: threading.Event

    def smoke(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", "smoke", *self.args, *args],
                              env=self.env, cwd=REPO, input=stdin, capture_output=True, text=True, timeout=300)


def _function(deployment: Deployment, settings: object, storage: str, output: object, step_dir: Path, root: Path,
              stop: threading.Event) -> None:
    """Event Grid and the deployed Function: each new smoke upload is delivered to the Function's own code."""
    from sheetdrop.submit import azureml
    from sheetdrop.trigger import BlobVersion, claim_store, handle_blob

    done: set[tuple[str, str]] = set()
    while not stop.wait(0.1):
        if not deployment.function_on.is_set():
            continue
        # Both smoke folders: sheetdrop_smoke/ and the table-mode sheetdrop_smoke_table/ (its sheetdrop.json too).
        for listed in deployment.input.list_blobs(name_starts_with="sheetdrop_smoke"):  # type: ignore[attr-defined]
            # The Function reads the blob's properties through its BlobClient binding (function_app.py).
            try:
                blob = deployment.input.get_blob_client(listed.name).get_blob_properties()  # type: ignore[attr-defined]
            except ResourceNotFoundError:
                continue  # smoke deletes what it dropped: a listing can name a blob gone by the time it is read
            if (blob.name, blob.etag) in done:
                continue
            done.add((blob.name, blob.etag))
            outcome = handle_blob(BlobVersion("input", blob.name, blob.etag, blob.size),
                                  invocation_id=str(uuid.uuid4()), settings=settings,  # type: ignore[arg-type]
                                  backend=azureml.create(settings), claims=claim_store(settings))  # type: ignore[arg-type]
            if outcome.run_id:
                folder = root / uuid.uuid4().hex[:8]
                folder.mkdir()
                run = deployment.workspace.run_step(outcome.run_id, step_dir, folder, storage, output)
                if deployment.logs_on.is_set():
                    deployment.logs.ingest_run(outcome.run_id, run["status"], blob.name, blob.etag)


@pytest.fixture
def deployment(https_azurite: tuple[str, Path], tmp_path: Path, step_snapshot: Path,  # noqa: F811
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    from azure.storage.blob import BlobServiceClient

    from sheetdrop.settings import load_settings

    endpoint, cert = https_azurite
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    account = BlobServiceClient(endpoint, credential={"account_name": "devstoreaccount1", "account_key": AZURITE_KEY})
    inputs = account.create_container("input")
    account.create_container("sheetdrop-claims")
    output = account.create_container(OUTPUT_CONTAINER)
    storage = (f"DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
               f"BlobEndpoint={endpoint};")
    now = int(time.time())
    storage_token = _jwt({"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{TENANT}/",
                          "nbf": now - 60, "iat": now - 60, "exp": now + 3600, "tid": TENANT,
                          "oid": "11111111-2222-3333-4444-555555555555"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    with serve() as aml_service, serve() as logs_service:
        workspace = V1Workspace(aml_service)
        for key, value in workspace.env().items():  # the Function's managed identity, served by the stand-in
            monkeypatch.setenv(key, value)
        values = {
            "AZURE_STORAGE_ACCOUNT_NAME": "devstoreaccount1", "AZURE_STORAGE_BLOB_ENDPOINT": endpoint,
            "INPUT_CONTAINER": "input", "CLAIMS_CONTAINER": "sheetdrop-claims", "SHEETDROP_AZUREML_API": "azureml",
            "EXPERIMENT_NAME": "sheetdrop-extract", "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION,
            "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP, "AZUREML_WORKSPACE": WORKSPACE,
            "AZUREML_COMPUTE": "sheetdrop-cpu",
            "AZUREML_PIPELINE_ENDPOINT_URL": f"{aml_service.url}/pipelines/v1.0/subscriptions/{SUBSCRIPTION}/"
            f"resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/"
            f"PipelineRuns/PipelineEndpointSubmit/Id/{ENDPOINT_ID}",
            # Not an azd output: where this test's ARM is (the Function's own AZUREML_ARM_URL setting).
            "AZUREML_ARM_URL": aml_service.url,
            "AZUREML_STORAGE_BLOB_ENDPOINT": endpoint, "LOG_ANALYTICS_WORKSPACE_ID": WORKSPACE_ID,
            "EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-smoke",
        }
        (tmp_path / "azd.env").write_text("".join(f'{k}="{v}"\n' for k, v in values.items()))
        (bin_dir / "az").write_text(AZ.format(python=sys.executable, logged_out=str(tmp_path / "logged-out"), tokens={
            "https://storage.azure.com": storage_token, "https://management.core.windows.net/": TOKEN,
            "https://management.azure.com": ARM_TOKEN, logs_service.url: LOGS_TOKEN}))
        (bin_dir / "azd").write_text(AZD.format(python=sys.executable, values=str(tmp_path / "azd.env")))
        for tool in ("az", "azd"):
            (bin_dir / tool).chmod(0o755)
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("AZURE_", "IDENTITY_", "MSI_", "INPUT_STORAGE", "SHEETDROP_", "AZUREML_"))}
        env |= {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "REQUESTS_CA_BUNDLE": str(cert)}
        deployment = Deployment(workspace, LogAnalytics(logs_service), env, bin_dir,
                                ["--poll", "0.2", "--timeout", "60", "--logs-timeout", "3",
                                 "--log-analytics-url", logs_service.url], inputs, threading.Event(),
                                threading.Event())
        deployment.function_on.set()
        deployment.logs_on.set()
        settings = load_settings({**workspace.env(), "INPUT_STORAGE": storage, "INPUT_CONTAINER": "input",
                                  "CLAIMS_CONTAINER": "sheetdrop-claims"})
        stop = threading.Event()
        function = threading.Thread(target=_function, args=(deployment, settings, storage, output, step_snapshot,
                                                             tmp_path, stop), daemon=True)
        function.start()
        try:
            yield deployment
        finally:
            stop.set()
            function.join(30)


V1_ITEMS = ["mount-layout", "output-path", "tags-kept", "job-identity", "per-run-overhead", "workbook-finds-run",
            "table-version"]


def test_the_happy_path_confirms_every_v1_item(deployment: Deployment) -> None:
    done = deployment.smoke("--yes")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert list(items(out)) == V1_ITEMS
    assert all(value.startswith("confirmed") for value in items(out).values()), out
    # The table folder's second version holds both workbooks, read back from the container playing
    # workspaceblobstore, where the step's commit wrote it.
    table = items(out)["table-version"]
    assert re.match(r"confirmed +sheetdrop_smoke_table_smoke:2 is table_version 2 over 2 segment globs \(tables/"
                    r"sheetdrop_smoke_table_smoke/segments/[^/]+/\*\.parquet, ", table), table
    assert "read back tables/sheetdrop_smoke_table_smoke/2/manifest.json: 2 segments, 2 files, 6 rows" in table
    assert re.search(r"markers \S+-t1, \S+-t2$", table), table
    assert "uploaded input/sheetdrop_smoke_table/sheetdrop.json ({\"versions\": \"table\"})" in out



def smoke_blobs(deployment: Deployment) -> list[str]:
    return list(deployment.input.list_blob_names(name_starts_with="sheetdrop_smoke/"))  # type: ignore[attr-defined]


def table_blobs(deployment: Deployment) -> list[str]:
    return list(deployment.input.list_blob_names(name_starts_with="sheetdrop_smoke_table/"))  # type: ignore[attr-defined]


def test_it_says_what_it_will_do_and_cost_and_starts_nothing_unless_told(deployment: Deployment) -> None:
    done = deployment.smoke(stdin="")
    assert done.returncode == 1, done.stdout
    plan = done.stdout[:done.stdout.index("go ahead?")]
    assert "uploads 1 generated workbook into input/sheetdrop_smoke/: \"sheetdrop_smoke/" in plan
    assert "then {\"versions\": \"table\"} as input/sheetdrop_smoke_table/sheetdrop.json and 2 workbooks, each " \
        "after the previous one's run ended, into input/sheetdrop_smoke_table/ (table mode: " in plan
    assert "3 pipeline runs on cluster sheetdrop-cpu: 0 to 2 nodes of STANDARD_DS3_V2, each back to 0 120 s" in plan
    assert "cost: a cluster start from 0 nodes" in plan
    assert done.stdout.strip().endswith("not started (pass --yes to skip this question)")
    assert smoke_blobs(deployment) == []


def test_no_run_appears_when_no_event_reaches_the_function(deployment: Deployment) -> None:
    deployment.function_on.clear()
    done = deployment.smoke("--yes", "--timeout", "2")
    assert done.returncode == 1
    assert "error: no run appeared for input/sheetdrop_smoke/" in done.stdout
    assert "the Function never claimed it, so no event reached it. next: check the Event Grid subscription (`az " \
        "eventgrid system-topic event-subscription show -g rg-sheetdrop --system-topic-name evgt-smoke -n " \
        "sheetdrop-workbook-dropped`)" in done.stdout
    assert all(v == "NOT confirmed  not checked: the smoke test stopped (error: above)" for v in items(
        done.stdout).values()), done.stdout
    assert done.stdout.strip().endswith("smoke: FAILED (a failure, 7 not confirmed: " + ", ".join(V1_ITEMS) + ")")
    assert "left behind: 1 workbooks in input/sheetdrop_smoke/" in done.stdout


def test_a_run_that_registers_no_dataset_fails_with_its_step_log(deployment: Deployment) -> None:
    deployment.workspace.keeps_registrations = False
    done = deployment.smoke("--yes")
    assert done.returncode == 1
    assert "ended Completed and registered no dataset; the step log ends:" in done.stdout, done.stdout
    assert "converted: 1 sheets, 3 rows in" in done.stdout  # the tail of the step's own log
    assert "next: open the run in AzureML studio, workspace mlw-sheetdrop" in done.stdout


def test_a_table_version_the_service_did_not_register_leaves_table_version_unconfirmed(
        deployment: Deployment) -> None:
    deployment.workspace.keeps_table_registrations = False  # the per-file versions are registered all the same
    done = deployment.smoke("--yes")
    assert done.returncode == 1
    found = items(done.stdout)
    assert re.match(r"NOT confirmed +the t2 run \S+ completed but registered no table version of "
                    r"sheetdrop_smoke_table_smoke \(registered: nothing\); next: check that sheetdrop_smoke_table/"
                    r"sheetdrop.json says \{\"versions\": \"table\"\} and read the step's 'table:' lines in its log$",
                    found["table-version"]), found["table-version"]
    assert [k for k, v in found.items() if v.startswith("confirmed")] == [k for k in V1_ITEMS if k != "table-version"]
    assert done.stdout.strip().endswith("smoke: FAILED (1 not confirmed: table-version)")


def test_submission_tags_the_service_dropped_leave_tags_kept_unconfirmed(deployment: Deployment) -> None:
    deployment.workspace.ignore_tags = True  # found all the same, by the tags the step sets itself
    done = deployment.smoke("--yes")
    assert done.returncode == 1
    found = items(done.stdout)
    assert found["tags-kept"].startswith("NOT confirmed  the pipeline run lacks the submission's "
                                         "function_invocation_id, sheetdrop_submission_id; its tags are {"), found
    assert [k for k, v in found.items() if v.startswith("confirmed")] == [k for k in V1_ITEMS if k != "tags-kept"]
    assert done.stdout.strip().endswith("smoke: FAILED (1 not confirmed: tags-kept)")


def test_the_workbook_query_without_the_run_leaves_workbook_finds_run_unconfirmed(deployment: Deployment) -> None:
    deployment.logs_on.clear()
    done = deployment.smoke("--yes", "--logs-timeout", "1")
    assert done.returncode == 1
    evidence = items(done.stdout)["workbook-finds-run"]
    assert evidence.startswith("NOT confirmed  the workbook's runs query has no row for ")
    assert "next: Log Analytics ingests within minutes: run again with a longer --logs-timeout" in evidence
    # It asked with the workbook's own query and its own token (the stand-in answers nothing else).
    assert all(r.headers["authorization"] == f"Bearer {LOGS_TOKEN}" for r in deployment.logs.service.requests)


def test_without_a_login_it_says_az_login_and_uploads_nothing(deployment: Deployment, tmp_path: Path) -> None:
    (tmp_path / "logged-out").touch()
    done = deployment.smoke("--yes")
    assert done.returncode == 2
    assert done.stdout.startswith("error: not-signed-in: the Azure CLI gave no token: ")
    assert "next: `az login` (CI: `az login --service-principal …`), then `az account set --subscription " \
        f"{SUBSCRIPTION}`" in done.stdout
    assert smoke_blobs(deployment) == []


def test_a_storage_token_storage_does_not_take_stops_at_the_upload(deployment: Deployment, tmp_path: Path) -> None:
    az = deployment.bin / "az"
    # A token for another audience: storage refuses it (Azurite checks aud, iss and lifetime, as Storage does).
    now = int(time.time())
    wrong = _jwt({"aud": "https://vault.azure.net", "iss": f"https://sts.windows.net/{TENANT}/", "nbf": now - 60,
                  "iat": now - 60, "exp": now + 3600, "tid": TENANT})
    az.write_text(re.sub(r"'https://storage.azure.com': '[^']+'", f"'https://storage.azure.com': '{wrong}'",
                         az.read_text()))
    done = deployment.smoke("--yes")
    assert done.returncode == 1
    assert "error: storage answered HTTP 403 AuthenticationFailed: " in done.stdout, done.stdout
    assert "next: storage did not take the Azure CLI's token (another tenant, or expired): `az login` again" in \
        done.stdout
    assert "left behind: nothing (nothing was uploaded)" in done.stdout
    assert smoke_blobs(deployment) == []


def test_without_an_azd_environment_it_says_azd_up(deployment: Deployment) -> None:
    (deployment.bin / "azd").unlink()
    done = deployment.smoke("--yes")
    assert done.returncode == 2
    assert done.stdout.splitlines() == [
        "error: no-azd-env: azd is not on PATH: install the Azure Developer CLI, or pass --env-file with the output "
        "of `azd env get-values`",
        "next: run `azd up` in this checkout (or `azd env select NAME`), or pass --env-file with the output of "
        "`azd env get-values`"]


def readme_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Smoke test\n")
    end = readme.find("\n## ", start)
    section = readme[start:end if end > 0 else len(readme)]
    return [line.split("  #", 1)[0].strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)
            for line in block.splitlines() if line.split("  #", 1)[0].strip()]


def test_the_readme_smoke_commands_run_as_written(deployment: Deployment) -> None:
    """README, "Smoke test": each command as written (this deployment's loopback endpoints and short waits appended),
    the first one answered yes."""
    first, second = readme_commands()
    assert (first, second) == (".venv/bin/sheetdrop smoke", ".venv/bin/sheetdrop smoke --yes --clean")
    runs = []
    for command, stdin in ((first, "y\n"), (second, "")):
        done = subprocess.run([*shlex.split(command), *deployment.args], env=deployment.env, cwd=REPO, input=stdin,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().endswith("smoke: every item confirmed (7)")
        runs.append(done.stdout)
    assert "go ahead? [y/N]" in runs[0]
    assert "left behind: 3 workbooks in input/sheetdrop_smoke/ and sheetdrop_smoke_table/ (" in runs[0]
    assert "go ahead?" not in runs[1]
    assert "cleaned: 3 smoke workbooks and sheetdrop_smoke_table/sheetdrop.json deleted from input/sheetdrop_smoke/ " \
        "and sheetdrop_smoke_table/" in runs[1]
    assert "cleaned: dataset sheetdrop_smoke: every version unregistered" in runs[1]
    assert "cleaned: dataset sheetdrop_smoke_table_smoke: every version unregistered" in runs[1]
    # The first run's workbooks stay (it was not asked to clean), the second's are gone, and so are the datasets.
    assert len(smoke_blobs(deployment)) == 1 and deployment.workspace.datasets == {}
    assert len(table_blobs(deployment)) == 2
    latency = runs[0][runs[0].index("latency of "):runs[0].index("what only a real workspace confirms:")]
    assert [line.split("  ")[1].strip() for line in latency.splitlines()[1:]] == [
        "upload → claimed by the Function", "claimed → run created", "run created → step started",
        "step started → step ended", "step ended → run ended",
        "upload → datasets registered", "the step's own conversion"]


def test_each_deployed_backend_has_smoke_checks_for_exactly_its_docs_items() -> None:
    from sheetdrop.submit.backends import DEPLOYED
    from sheetdrop_local.smoke import CHECKS, checks
    from sheetdrop_local.smoke.report import DOCS
    from test_infra import REAL_WORKSPACE_ITEMS

    assert set(CHECKS) == set(DEPLOYED) == set(DOCS)
    for backend, doc in DOCS.items():
        assert list(checks(backend).ITEMS) == REAL_WORKSPACE_ITEMS[doc.removeprefix("docs/")], backend
