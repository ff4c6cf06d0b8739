"""Tests that need the AzureML SDK v2 environment (.venv-aml2): azure-ai-ml and mlflow.

Nothing here reaches Azure: as in tests/aml, a guard refuses every connection that is not to loopback.
"""

from __future__ import annotations

import importlib.util
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from loopback import LoopbackService, forbid_network, serve
from tls import Certificate, self_signed

if TYPE_CHECKING:
    from tests.aml2.workspace import Workspace

try:
    _has_sdk = importlib.util.find_spec("azure.ai.ml") is not None
except ModuleNotFoundError:  # no azure.ai package at all
    _has_sdk = False
if not _has_sdk:
    # Run from another venv: these tests belong to .venv-aml2.
    collect_ignore_glob = ["test_*.py"]

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-sheetdrop"
WORKSPACE = "mlw-sheetdrop"
ENDPOINT = "sheetdrop-extract"

@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_network(monkeypatch)
    # azure-ai-ml and mlflow would otherwise report telemetry or look for a tracking server.
    monkeypatch.setenv("AZUREML_SDKV2_TELEMETRY_OPTOUT", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def as_the_function(monkeypatch: pytest.MonkeyPatch, url: str, identity_header: str) -> None:
    """This process as the Function: azure-ai-ml pointed at ``url`` (its own AZUREML_DEV_URL_MFE override) and a
    managed identity served there by App Service's protocol (IDENTITY_ENDPOINT/IDENTITY_HEADER), nothing else."""
    monkeypatch.setenv("AZUREML_DEV_URL_MFE", url)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", identity_header)
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                 "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def loopback() -> Iterator[LoopbackService]:
    with serve() as service:
        yield service


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def input_account(tmp_path_factory: pytest.TempPathFactory, certificate: Certificate) -> Iterator[str]:
    """An input storage account the step reads with a bearer token, as it does with its managed identity: Azurite
    over https with its OAuth check on (Azurite README, "OAuth Configuration": it needs https). The account's blob
    endpoint; uploads use Azurite's published key (:func:`input_container`)."""
    from sheetdrop_local.azurite import FLAGS, azurite_binary, free_port, port_open

    port = free_port()
    process = subprocess.Popen([str(Path(azurite_binary()).with_name("azurite-blob")), "--blobPort", str(port),
                                "--location", str(tmp_path_factory.mktemp("azurite-https")),
                                "--cert", str(certificate.cert), "--key", str(certificate.key), "--oauth", "basic",
                                *FLAGS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_open(port):
        assert process.poll() is None and time.monotonic() < deadline, "Azurite (https) did not start"
        time.sleep(0.1)
    try:
        yield f"https://127.0.0.1:{port}/devstoreaccount1"
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture
def tls_env(certificate: Certificate, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests (azure-core's transport) trusts the loopback's certificate.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.cert))


@pytest.fixture
def input_container(input_account: str, tls_env: None) -> Any:
    import uuid

    from azure.storage.blob import BlobServiceClient

    from sheetdrop_local.azurite import AZURITE_ACCOUNT, AZURITE_KEY

    service = BlobServiceClient(input_account, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
    return service.create_container(f"input-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def workspace(tmp_path: Path, certificate: Certificate, tls_env: None, step_snapshot: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """The AzureML workspace stand-in (tests/aml2/workspace.py) on a TLS loopback; azure-ai-ml reaches it through
    its own endpoint override (AZUREML_DEV_URL_MFE), and this process's managed identity is App Service's, as
    the Function's is."""
    from tests.aml2.workspace import APP_SERVICE_HEADER, Workspace

    with serve(certificate) as service:
        as_the_function(monkeypatch, service.url, APP_SERVICE_HEADER)
        # The stand-in's MLflow tracking store is a folder (mlflow-skinny has no server here).
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        yield Workspace(service, tmp_path / "workspace", step_snapshot)


@pytest.fixture
def ml_client(workspace: Workspace) -> Any:
    from azure.ai.ml import MLClient
    from azure.identity import ManagedIdentityCredential

    return MLClient(ManagedIdentityCredential(), SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE)


def pytest_configure(config: pytest.Config) -> None:
    # azure-ai-ml's schemas use marshmallow APIs that marshmallow 3.x warns about; they are not ours.
    config.addinivalue_line("filterwarnings", "ignore::marshmallow.warnings.RemovedInMarshmallow4Warning")
    config.addinivalue_line("filterwarnings", "ignore::marshmallow.warnings.ChangedInMarshmallow4Warning")
