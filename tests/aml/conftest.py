"""Tests that need the AzureML environment (.venv-aml): azureml-core and azureml-pipeline.

Nothing here reaches Azure. A guard refuses every socket connection that is not to
loopback, so an SDK call that would go to the service fails the test instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from loopback import LoopbackService, forbid_network, serve

try:
    _has_azureml = importlib.util.find_spec("azureml.pipeline.core") is not None
except ModuleNotFoundError:  # no azureml package at all
    _has_azureml = False
if not _has_azureml:
    # Run from the Function's venv: these tests belong to the other environment.
    collect_ignore_glob = ["test_*.py"]



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/aml/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.aml)


# -- no network but loopback ---------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_network(monkeypatch)


# -- a scripted loopback HTTP service (tests/loopback.py) ----------------------------------------

@pytest.fixture
def loopback() -> Iterator[LoopbackService]:
    with serve() as service:
        yield service


# -- an offline workspace -------------------------------------------------------------------------

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-sheetdrop"
WORKSPACE = "mlw-sheetdrop"


@pytest.fixture
def offline_workspace() -> Any:
    """A real azureml Workspace object that never talks to the service.

    The smallest stand-ins the SDK needs: an authentication that refuses to hand out
    tokens (any service call fails the test) and a service context whose discovery
    answers a closed loopback port instead of asking Azure.
    """
    from azureml._restclient.service_context import ServiceContext, _ServiceKeys
    from azureml.core import Workspace
    from azureml.core.authentication import AbstractAuthentication

    class NoTokens(AbstractAuthentication):
        def _refuse(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("offline test: the SDK asked for a token, i.e. tried to call the service")

        _get_arm_token = _get_graph_token = _get_azureml_client_token = _get_all_subscription_ids = _refuse

    class OfflineServiceContext(ServiceContext):
        def _fetch_endpoints(self) -> dict[str, str]:
            return dict.fromkeys(_ServiceKeys.get_discovery_keys(), "http://127.0.0.1:9")

    # cloud= spares the SDK fetching the cloud list from management.azure.com.
    auth = NoTokens(cloud="AzureCloud")
    workspace = Workspace(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, auth=auth, _location="westeurope",
                          _disable_service_check=True, _workspace_id="55555555-6666-7777-8888-999999999999")
    workspace._service_context = OfflineServiceContext(
        SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, workspace._workspace_id, None, auth)
    return workspace
