"""The Function's AzureML submit backend against azureml-pipeline-core's own REST contract.

A loopback server stands in for the service. The route is the one the SDK's generated
client calls (the client is driven at the same server and its request recorded), the
body is read back with the SDK's own models, and the token comes from azure-identity's
App Service managed-identity flow served on loopback, the flow the Function uses in Azure.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azureml.pipeline.core._restclients.aeva import models as aeva_models
from azureml.pipeline.core._restclients.aeva.aml_pipelines_api10 import AMLPipelinesAPI10
from azureml.pipeline.core._restclients.aeva.models import PipelineSubmissionInfo
from msrest import Deserializer, Serializer

from loopback import LoopbackService
from sheetdrop.settings import load_settings
from sheetdrop.submit import SubmitError, SubmitRequest, azureml
from sheetdrop.submit.azureml import TOKEN_SCOPE, AzureMLBackend
from sheetdrop.submit.retry import Retrier, RetryPolicy
from sheetdrop.submit.workspace import Workspace
from sheetdrop_contract import contract
from tests.aml.conftest import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE

ENDPOINT_ID = "0f7c1d2e-3a4b-4c5d-8e9f-a0b1c2d3e4f5"
RUN_ID = "7d3e5a4b-1c2d-4e3f-9a8b-7c6d5e4f3a2b"
TOKEN = "token-from-loopback-identity-endpoint"
IDENTITY_HEADER = "identity-header-secret"
SUBMIT_PATH_PART = "/PipelineRuns/PipelineEndpointSubmit/Id/"

SDK_MODELS = {k: v for k, v in aeva_models.__dict__.items() if isinstance(v, type)}

REQUEST = SubmitRequest(
    experiment_name="sheetdrop-extract",
    datastore_name="sheetdrop_input",
    relative_path="sales/2024 Q1 (final).xlsx",
    dataset_name="sales",
    description="Extract input/sales/2024 Q1 (final).xlsx into dataset sales",
    source_container="input",
    source_blob="sales/2024 Q1 (final).xlsx",
    source_etag='"0x8DC1234567890AB"',
    tags={"source_container": "input", "source_blob": "sales/2024 Q1 (final).xlsx",
          "source_etag": '"0x8DC1234567890AB"', "function_invocation_id": "inv-42"},
    input_account="https://stsheetdrop.blob.core.windows.net",
)


class Waits:
    """Records the backoff the retrier chose instead of sleeping it."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def identity_reply(recorded: Any) -> Any:
    # azure-identity's App Service flow: GET IDENTITY_ENDPOINT?resource=...&api-version=2019-08-01.
    if recorded.path == "/msi/token":
        if recorded.headers.get("x-identity-header") != IDENTITY_HEADER:
            return 401, {}, {"error": "bad identity header"}
        resource = recorded.query["resource"][0]
        return 200, {}, {"access_token": TOKEN, "expires_on": "4102444800", "resource": resource,
                         "token_type": "Bearer"}
    return 500, {}, {"error": {"code": "Unscripted", "message": recorded.path}}


@pytest.fixture
def backend(loopback: LoopbackService, monkeypatch: pytest.MonkeyPatch) -> tuple[AzureMLBackend, Waits]:
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{loopback.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                 "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT"):
        monkeypatch.delenv(name, raising=False)
    loopback.default = identity_reply
    settings = load_settings({
        "SHEETDROP_BACKEND": "azureml",
        "INPUT_STORAGE__blobServiceUri": "https://example.blob.core.windows.net",
        "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION,
        "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP,
        "AZUREML_WORKSPACE": WORKSPACE,
        "AZUREML_PIPELINE_ENDPOINT_ID": ENDPOINT_ID,
        "AZUREML_API_URL": loopback.url,
    })
    # The real credential chain the Function uses: DefaultAzureCredential -> managed identity (App Service).
    backend = azureml.create(settings)
    waits = Waits()
    backend.service.retrier = Retrier(RetryPolicy(deadline_seconds=60, base_delay=0.5, max_delay=4), sleep=waits)
    return backend, waits


def accepted() -> tuple[int, dict[str, str], dict[str, Any]]:
    return 200, {}, {"Id": RUN_ID, "Status": {"StatusCode": "NotStarted"}, "RunHistoryExperimentName":
                     "sheetdrop-extract"}


def sdk_submit_path(loopback: LoopbackService) -> str:
    """The path azureml-pipeline-core's own client posts a PipelineEndpoint submission to."""
    loopback.script(SUBMIT_PATH_PART, accepted())
    client = AMLPipelinesAPI10(base_url=loopback.url)
    submit = client.api_v10_subscriptions_by_subscription_id_resource_groups_by_resource_group_name_providers_microsoft_machine_learning_services_workspaces_by_workspace_name_pipeline_endpoint_submit_by_pipeline_run_id_post  # noqa: E501
    entity = submit(subscription_id=SUBSCRIPTION, resource_group_name=RESOURCE_GROUP, workspace_name=WORKSPACE,
                    id=ENDPOINT_ID, pipeline_submission_info=PipelineSubmissionInfo(experiment_name="x"),
                    custom_headers={"Authorization": "Bearer sdk"})
    assert entity.id == RUN_ID
    sdk_request = loopback.requests.pop()
    assert sdk_request.method == "POST"
    return sdk_request.path


def test_submission_matches_the_sdk_route_models_and_token(backend: tuple[AzureMLBackend, Waits],
                                                           loopback: LoopbackService) -> None:
    backend_, waits = backend
    sdk_path = sdk_submit_path(loopback)
    loopback.script(SUBMIT_PATH_PART, accepted())

    result = backend_.submit(REQUEST)

    (ours,) = loopback.to(SUBMIT_PATH_PART)
    assert ours.method == "POST"
    assert ours.path == sdk_path
    assert ours.query == {}
    assert ours.headers["authorization"] == f"Bearer {TOKEN}"
    (token_request,) = loopback.to("/msi/token")
    assert token_request.query["resource"] == [TOKEN_SCOPE.removesuffix("/.default")]

    body = ours.json()
    info = Deserializer(SDK_MODELS)("PipelineSubmissionInfo", body)
    assert info.experiment_name == "sheetdrop-extract"
    assert info.description == REQUEST.description
    # RunSource as the SDK's own PipelineEndpoint.submit sends it (_aeva_provider.py, docs/azureml.md).
    assert info.run_source == "SDK"
    # The step's string parameters, each as the step reads it (encoded); no DataPath: the step reads the version
    # itself, from the account in input_account.
    encode = contract.encode_argument
    assert info.parameter_assignments == {
        "input_account": encode("https://stsheetdrop.blob.core.windows.net"),
        "dataset_name": "sales",
        "source_version": encode(contract.source_version("input", "sales/2024 Q1 (final).xlsx",
                                                         REQUEST.source_etag)),
        "read_options": "%7B%7D"}
    assert not info.data_path_assignments
    tags = dict(info.tags)
    assert tags.pop("sheetdrop_submission_id")
    assert tags == REQUEST.tags
    # Every key we send is one the model knows: serialized back, the SDK writes exactly our body.
    assert Serializer(SDK_MODELS).body(info, "PipelineSubmissionInfo") == body

    assert result.run_id == RUN_ID
    assert result.url == (f"https://ml.azure.com/runs/{RUN_ID}?wsid=/subscriptions/{SUBSCRIPTION}"
                          f"/resourcegroups/{RESOURCE_GROUP}/workspaces/{WORKSPACE}")
    assert waits.delays == []


def test_studio_url_has_the_sdk_portal_form() -> None:
    from azureml.core._portal import HasRunPortal, HasWorkspacePortal

    from sheetdrop.submit.workspace import studio_run_url

    expected = ("https://ml.azure.com" + HasRunPortal.RUN_PATH.format(RUN_ID)
                + HasWorkspacePortal.WORKSPACE_FMT.format(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE))
    assert studio_run_url(RUN_ID, Workspace(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE)) == expected


def test_transient_failures_are_retried_then_succeed(backend: tuple[AzureMLBackend, Waits],
                                                     loopback: LoopbackService) -> None:
    backend_, waits = backend
    loopback.script(
        SUBMIT_PATH_PART,
        (429, {"Retry-After": "7"}, {"error": {"code": "TooManyRequests", "message": "slow down"}}),
        (503, {}, {"error": {"code": "ServiceUnavailable", "message": "try later"}}),
        "drop",
        accepted(),
    )
    # After the dropped connection (the run may have started) the backend asks run history first.
    loopback.script("/runs:query", (200, {}, {"value": [], "continuationToken": None}))

    result = backend_.submit(REQUEST)

    assert result.run_id == RUN_ID
    attempts = loopback.to(SUBMIT_PATH_PART)
    assert len(attempts) == 4
    # Only the ambiguous failure was followed by a look at run history; 429 and 503 were not.
    assert len(loopback.to("/runs:query")) == 1
    assert [r.path.endswith("/runs:query") for r in loopback.requests if r.path != "/msi/token"] == [
        False, False, False, True, False]
    # The same submission each time: one submission id, the same body.
    assert len({a.body for a in attempts}) == 1
    assert len(waits.delays) == 3
    assert waits.delays[0] >= 7  # Retry-After is honoured even where backoff would wait less
    assert all(0 <= d <= 7 for d in waits.delays[1:])


@pytest.mark.parametrize(("status", "error", "cause"), [
    (400, {"code": "UserError", "message": "Parameter foo is not defined"}, "input_account, dataset_name, "
                                                                            "source_version, read_options, i.e. was"),
    (401, {"code": "InvalidAuthenticationToken", "message": "The token is invalid"}, "token was not accepted"),
    (403, {"code": "AuthorizationFailed", "message": "does not have authorization"}, "missing role"),
    (404, {"code": "EntityNotFound", "message": "PipelineEndpoint not found"}, "bad endpoint id"),
])
def test_client_errors_fail_at_once_naming_the_cause(backend: tuple[AzureMLBackend, Waits],
                                                     loopback: LoopbackService, status: int,
                                                     error: dict[str, str], cause: str) -> None:
    backend_, waits = backend
    loopback.script(SUBMIT_PATH_PART, (status, {}, {"error": error}), accepted())

    with pytest.raises(SubmitError) as raised:
        backend_.submit(REQUEST)

    message = str(raised.value)
    assert f"HTTP {status}" in message
    assert cause in message
    assert error["message"] in message
    assert len(loopback.to(SUBMIT_PATH_PART)) == 1
    assert waits.delays == []


def test_retries_stop_at_the_deadline(backend: tuple[AzureMLBackend, Waits], loopback: LoopbackService) -> None:
    backend_, waits = backend
    backend_.service.retrier = Retrier(RetryPolicy(deadline_seconds=30), sleep=waits)
    loopback.script(SUBMIT_PATH_PART, (429, {"Retry-After": "3600"}, {}), accepted())

    with pytest.raises(SubmitError, match="after the 30s budget"):
        backend_.submit(REQUEST)

    assert len(loopback.to(SUBMIT_PATH_PART)) == 1
    assert waits.delays == []


# -- finding the runs of a blob version (run history) -------------------------------------------

RUNS_QUERY_PART = "/runs:query"


def run_dto(run_id: str, tags: dict[str, str], parent: str | None = None) -> dict[str, Any]:
    return {"runId": run_id, "parentRunId": parent, "status": "Completed", "tags": tags}


def test_find_runs_uses_the_run_history_query_route_and_filter(backend: tuple[AzureMLBackend, Waits],
                                                               loopback: LoopbackService) -> None:
    from azureml._restclient._odata.runs import get_filter_run_tag_equals
    from azureml._restclient.models import QueryParamsDto
    from azureml._restclient.rest_client import RestClient
    from msrest.authentication import BasicTokenAuthentication

    backend_, _ = backend
    wanted = {"source_container": "input", "source_blob": REQUEST.source_blob, "source_etag": REQUEST.source_etag}
    # What azureml-core's own run-history client sends for the same question.
    loopback.script(RUNS_QUERY_PART, (200, {}, {"value": []}))
    sdk = RestClient(BasicTokenAuthentication({"access_token": "sdk"}), base_url=loopback.url)
    sdk.run.get_by_query(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, "sheetdrop-extract",
                         query_params=QueryParamsDto(filter=get_filter_run_tag_equals(
                             {k: v for k, v in wanted.items() if k != "source_etag"})))
    sdk_request = loopback.requests.pop()

    loopback.script(RUNS_QUERY_PART,
                    (200, {}, {"value": [run_dto("run-new", wanted),
                                         run_dto("run-step", wanted, parent="run-new"),
                                         run_dto("run-other-version", {**wanted, "source_etag": '"0x1"'})],
                               "continuationToken": "page-2"}),
                    (200, {}, {"value": [run_dto("run-old", wanted)]}))

    found = backend_.find_runs(*wanted.values())

    assert found == ["run-new", "run-old"]
    first, second = loopback.to(RUNS_QUERY_PART)
    assert first.path == sdk_request.path
    query = Deserializer({"QueryParamsDto": QueryParamsDto})("QueryParamsDto", first.json())
    # The etag carries double quotes, which the SDK's filter grammar cannot express: it is checked
    # on the answer instead, and the rest of the filter is the SDK's own expression.
    assert query.filter == json.loads(sdk_request.body)["filter"]
    assert query.continuation_token is None
    assert second.json()["continuationToken"] == "page-2"


def test_find_runs_of_a_new_experiment_is_empty(backend: tuple[AzureMLBackend, Waits],
                                                loopback: LoopbackService) -> None:
    backend_, _ = backend
    loopback.script(RUNS_QUERY_PART, (404, {}, {"error": {"code": "NotFound", "message": "no experiment"}}))
    assert backend_.find_runs("input", "a.xlsx", "0x1") == []


def test_a_submission_whose_answer_was_lost_is_not_sent_again(backend: tuple[AzureMLBackend, Waits],
                                                              loopback: LoopbackService) -> None:
    backend_, _ = backend
    # The service starts the run, then the connection drops before the answer arrives.
    loopback.script(SUBMIT_PATH_PART, "drop")
    loopback.script("/runs:query", (200, {}, {"value": [
        {"runId": RUN_ID, "parentRunId": None, "tags": dict(REQUEST.tags)}], "continuationToken": None}))

    result = backend_.submit(REQUEST)

    assert result.run_id == RUN_ID
    assert len(loopback.to(SUBMIT_PATH_PART)) == 1
