"""The AzureML backend's configuration and retry rules, in the Function's own environment (no azureml)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from azure.identity import ManagedIdentityCredential

from sheetdrop.settings import SettingsError, load_settings
from sheetdrop.submit import azureml
from sheetdrop.submit.azureml import runs_filter, submit_url
from sheetdrop.submit.retry import RetryPolicy, backoff_delay, parse_retry_after
from sheetdrop.submit.workspace import Workspace

BASE = {"SHEETDROP_BACKEND": "azureml", "INPUT_STORAGE__blobServiceUri": "https://st.blob.core.windows.net"}
URL = ("https://westeurope.api.azureml.ms/pipelines/v1.0/subscriptions/sub-1/resourceGroups/rg-1/providers/"
       "Microsoft.MachineLearningServices/workspaces/ws-1/PipelineRuns/PipelineEndpointSubmit/Id/ep-1")
#: The Function's credential type; nothing here asks it for a token.
CREDENTIAL = ManagedIdentityCredential()


def test_endpoint_url_setting_is_taken_apart() -> None:
    backend = azureml.create(load_settings({**BASE, "AZUREML_PIPELINE_ENDPOINT_URL": URL}), CREDENTIAL)
    assert backend.base_url == "https://westeurope.api.azureml.ms"
    assert (backend.workspace.subscription_id, backend.workspace.resource_group, backend.workspace.name) == (
        "sub-1", "rg-1", "ws-1")
    assert backend.endpoint_id == "ep-1"
    assert backend.submit_url == URL


def test_parts_settings_build_the_same_url() -> None:
    backend = azureml.create(load_settings({
        **BASE, "AZUREML_SUBSCRIPTION_ID": "sub-1", "AZUREML_RESOURCE_GROUP": "rg-1", "AZUREML_WORKSPACE": "ws-1",
        "AZUREML_PIPELINE_ENDPOINT_ID": "ep-1", "AZUREML_REGION": "West Europe",
        "AZUREML_SUBMIT_DEADLINE_SECONDS": "90"}), CREDENTIAL)
    assert backend.submit_url == URL
    assert backend.service.retrier.policy.deadline_seconds == 90


@pytest.mark.parametrize(("env", "named"), [
    ({}, "AZUREML_SUBSCRIPTION_ID"),
    ({"AZUREML_SUBSCRIPTION_ID": "s", "AZUREML_RESOURCE_GROUP": "r", "AZUREML_WORKSPACE": "w"},
     "AZUREML_PIPELINE_ENDPOINT_ID"),
    ({"AZUREML_SUBSCRIPTION_ID": "s", "AZUREML_RESOURCE_GROUP": "r", "AZUREML_WORKSPACE": "w",
      "AZUREML_PIPELINE_ENDPOINT_ID": "e"}, "AZUREML_REGION"),
    ({"AZUREML_PIPELINE_ENDPOINT_URL": "https://example.com/not/a/submit/url"}, "AZUREML_PIPELINE_ENDPOINT_URL"),
])
def test_missing_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        azureml.create(load_settings({**BASE, **env}), CREDENTIAL)


def test_path_segments_are_escaped() -> None:
    url = submit_url("https://x", Workspace("s", "r", "w"), "a/b")
    assert url.endswith("/PipelineEndpointSubmit/Id/a%2Fb")


def test_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "12"}) == 12
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=lambda: 1445412480.0) == 10
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=8)
    assert [backoff_delay(n, policy, rand=lambda: 1.0) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    assert backoff_delay(3, policy, rand=lambda: 0.25) == 1


def test_runs_filter_is_the_sdk_grammar() -> None:
    assert runs_filter({"a": "x"}) == '(Tags/a eq "x")'
    assert runs_filter({"a": "x", "b": "y"}) == '((Tags/a eq "x") and (Tags/b eq "y"))'
    assert runs_filter({"a": 'x"y'}) is None


def test_backend_imports_nothing_of_azureml() -> None:
    code = ("import sys, sheetdrop.submit.azureml; "
            "print(sorted(m for m in sys.modules if m == 'azureml' or m.startswith('azureml.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
