"""`sheetdrop backfill --azure`: the deployed app's settings from azd's environment, with the identity of whoever is
signed in to the Azure CLI — the identity path, without Azure.

What stands in, and why it is faithful where it matters:
- the Azure CLI: a stand-in `az` on PATH answering `az account get-access-token --resource R` in the JSON
  azure-identity's AzureCliCredential parses (azure/identity/_credentials/azure_cli.py), logging what was asked;
- the storage account: Azurite over HTTPS with `--oauth basic`, which takes a bearer token and checks its audience,
  issuer and lifetime (not its signature), as storage's token path does;
- AzureML: the loopback stand-in of the reliability tests (tests/azureml_standin.py), which refuses a request
  without the bearer token the `az` stand-in gave for Azure Resource Manager.
Nothing in the backfill's environment names a managed identity, a key or a connection string.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azureml_standin import ENDPOINT_ID, RESOURCE_GROUP, SUBSCRIPTION, TOKEN, WORKSPACE, AzureMLStandIn
from conftest import REPO, SAMPLE
from loopback import serve
from sheetdrop_contract import batch, contract
from sheetdrop_local import deployed
from sheetdrop_local.azurite import AZURITE_KEY, azurite_binary, free_port, port_open

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AZ = """#!{python}
import json, sys, time
resource = sys.argv[sys.argv.index("--resource") + 1]
with open({log!r}, "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
tokens = {tokens!r}
if resource not in tokens:
    sys.exit("ERROR: no token for " + resource)
print(json.dumps({{"accessToken": tokens[resource], "expires_on": int(time.time()) + 3600, "tokenType": "Bearer"}}))
"""


def _jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def https_azurite(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Azurite over HTTPS taking bearer tokens; its blob endpoint and the certificate to trust."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    ports = [free_port(), free_port(), free_port()]
    proc = subprocess.Popen([azurite_binary(), "--location", str(tmp_path / "azurite"), "--blobPort", str(ports[0]),
                             "--queuePort", str(ports[1]), "--tablePort", str(ports[2]), "--oauth", "basic",
                             "--cert", str(cert), "--key", str(key), "--skipApiVersionCheck", "--loose",
                             "--disableTelemetry", "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not port_open(ports[0]):
            assert proc.poll() is None and time.monotonic() < deadline, "Azurite did not start"
            time.sleep(0.1)
        yield f"https://127.0.0.1:{ports[0]}/devstoreaccount1", cert
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_backfill_on_azure_uses_the_signed_in_identity_for_storage_and_azureml(
        https_azurite: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.storage.blob import BlobServiceClient

    blob_endpoint, cert = https_azurite
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    # Setting up the "deployed" account with its key; the backfill below never sees it.
    account = BlobServiceClient(blob_endpoint, credential={"account_name": "devstoreaccount1",
                                                           "account_key": AZURITE_KEY})
    inputs = account.create_container("input")
    for i in range(3):
        inputs.upload_blob(f"sales/q{i}.xlsx", SAMPLE.read_bytes())
    now = int(time.time())
    storage_token = _jwt({"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{TENANT}/",
                          "nbf": now - 60, "iat": now - 60, "exp": now + 3600, "tid": TENANT,
                          "oid": "11111111-2222-3333-4444-555555555555"})
    bin_dir, az_log = tmp_path / "bin", tmp_path / "az.log"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(AZ.format(python=sys.executable, log=str(az_log), tokens={
        "https://storage.azure.com": storage_token, "https://management.core.windows.net/": TOKEN}))
    (bin_dir / "az").chmod(0o755)
    with serve() as service:
        aml = AzureMLStandIn(service)
        env_file = tmp_path / "azd.env"
        env_file.write_text("\n".join(f'{k}="{v}"' for k, v in {
            "AZURE_STORAGE_ACCOUNT_NAME": "devstoreaccount1", "AZURE_STORAGE_BLOB_ENDPOINT": blob_endpoint,
            "INPUT_CONTAINER": "input", "SHEETDROP_AZUREML_API": "azureml",
            "AZUREML_PIPELINE_ENDPOINT_URL": f"{service.url}/pipelines/v1.0/subscriptions/{SUBSCRIPTION}/"
            f"resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/"
            f"PipelineRuns/PipelineEndpointSubmit/Id/{ENDPOINT_ID}"}.items()) + "\n")
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("AZURE_", "IDENTITY_", "MSI_", "INPUT_STORAGE", "SHEETDROP_", "AZUREML_"))}
        env |= {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "REQUESTS_CA_BUNDLE": str(cert)}
        done = subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", "backfill", "--azure", "--env-file",
                               str(env_file), "--max-in-flight", "0"], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "(signed in with the Azure CLI)" in done.stdout.splitlines()[0]
        # A backfill goes in batches: the three versions in one run of the pipeline, its manifest naming them.
        (submission,) = aml.submissions
        assert submission.headers["authorization"] == f"Bearer {TOKEN}"
        manifest = submission.json()["ParameterAssignments"][batch.MANIFEST_PARAMETER]
        assert sorted(v.blob for v in batch.parse_manifest(contract.decode_argument(manifest))) == [
            "sales/q0.xlsx", "sales/q1.xlsx", "sales/q2.xlsx"]
    asked = az_log.read_text().splitlines()
    assert {line.split("--resource ")[1].split()[0] for line in asked} == {
        "https://storage.azure.com", "https://management.core.windows.net/"}
    # The claims it wrote with the storage token: a second backfill finds nothing left to do.
    claims = account.get_container_client("sheetdrop-claims")
    assert len([n for n in claims.list_blob_names() if n.startswith("input/")]) == 3


def test_the_deployed_settings_follow_the_templates_rule_for_v2(tmp_path: Path) -> None:
    env_file = tmp_path / "azd.env"
    env_file.write_text('AZURE_STORAGE_ACCOUNT_NAME="stabc"\nSHEETDROP_AZUREML_API="azureml-v2"\n'
                        'AZUREML_PIPELINE_ENDPOINT_URL="https://x/pipelines"\n')
    values = deployed.azd_values(env_file)
    # v2 asked for, but not published yet: the app still submits to v1 (infra/app/function.bicep), so does this.
    assert deployed.app_settings(values)["SHEETDROP_BACKEND"] == "azureml"
    assert deployed.app_settings(values)["INPUT_STORAGE__blobServiceUri"] == "https://stabc.blob.core.windows.net"
    published = {**values, "AZUREML_BATCH_ENDPOINT_URL": "https://e.westeurope.inference.ml.azure.com/jobs"}
    assert deployed.app_settings(published)["SHEETDROP_BACKEND"] == "azureml-v2"
    with pytest.raises(deployed.DeployedError, match="no AZURE_STORAGE_ACCOUNT_NAME: run `azd up` first"):
        deployed.app_settings({})


def test_the_v1_backend_says_which_runs_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a cloud backfill's pace asks: RunOperations.get_workspace_run's route, RunDto.status."""
    from sheetdrop.settings import load_settings
    from sheetdrop.submit import SubmitRequest, azureml

    with serve() as service:
        aml = AzureMLStandIn(service)
        for key, value in aml.env().items():  # the Function's credential: a managed identity the stand-in serves
            monkeypatch.setenv(key, value)
        backend = azureml.create(load_settings({**aml.env(), "INPUT_STORAGE__blobServiceUri": "https://x.blob.x"}))
        runs = [backend.submit(SubmitRequest("sheetdrop-extract", "sheetdrop_input", f"sales/q{i}.xlsx", "sales", "",
                                             "input", f"sales/q{i}.xlsx", f'"0x{i}"')).run_id for i in range(2)]
        assert backend.ended(runs) == set()
        aml.finish(runs[0])
        assert backend.ended([*runs, "no-such-run"]) == {runs[0], "no-such-run"}
        aml.finish(runs[1], "Canceled")
        assert backend.ended(runs) == set(runs)
        gets = [r for r in service.requests if r.method == "GET" and "/history/v1.0/" in r.path]
        assert gets[0].path == (f"/history/v1.0/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                                f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/runs/{runs[0]}")
        assert {r.headers["authorization"] for r in gets} == {f"Bearer {TOKEN}"}
