"""Tests that need the AzureML SDK v2 environment (.venv-aml2): azure-ai-ml and mlflow.

Nothing here reaches Azure: as in tests/aml, a guard refuses every connection that is not to loopback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from loopback import LoopbackService, forbid_network, serve

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


@pytest.fixture
def loopback() -> Iterator[LoopbackService]:
    with serve() as service:
        yield service


def pytest_configure(config: pytest.Config) -> None:
    # azure-ai-ml's schemas use marshmallow APIs that marshmallow 3.x warns about; they are not ours.
    config.addinivalue_line("filterwarnings", "ignore::marshmallow.warnings.RemovedInMarshmallow4Warning")
    config.addinivalue_line("filterwarnings", "ignore::marshmallow.warnings.ChangedInMarshmallow4Warning")
