"""The Function's v2 backend against azure-ai-ml's own batch endpoint invocation and REST models.

A loopback server stands in for ARM, the batch endpoint and the managed-identity endpoint. The SDK's
own ``BatchEndpointOperations.invoke`` is driven at it for the same invocation and its request
recorded; the backend's request must match it (route, headers, body) and read back with the SDK's
``BatchJobResource`` model. Tokens come from azure-identity through App Service's managed-identity
protocol, as in Azure.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.ai.ml import Input, MLClient, Output
from azure.ai.ml._restclient.v2020_09_01_dataplanepreview.models import (
    BatchJobResource,
    LiteralJobInput,
    UriFolderJobOutput,
)
from azure.identity import ManagedIdentityCredential

from loopback import LoopbackService, Recorded, Reply
from sheetdrop.settings import load_settings
from sheetdrop.submit import SubmitError, SubmitRequest, azureml_v2
from sheetdrop.submit.azureml_v2 import (
    ARM_SCOPE,
    INVOKE_SCOPE,
    SOURCE_KEY_PROPERTY,
    AzureMLV2Backend,
    job_name,
    source_key,
)
from sheetdrop.submit.retry import Retrier, RetryPolicy
from sheetdrop_contract import contract
from tests.aml2.conftest import ENDPOINT, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, as_the_function

IDENTITY_HEADER = "identity-header-secret"
TOKENS = {"https://ml.azure.com": "token-for-ml", "https://management.azure.com": "token-for-arm"}
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
    read_options='{"header_row": 2}',
    input_account="https://stsheetdrop.blob.core.windows.net",
)
NAME = job_name(REQUEST.source_container, REQUEST.source_blob, REQUEST.source_etag)
KEY = source_key(REQUEST.source_container, REQUEST.source_blob, REQUEST.source_etag)
#: The scoring URI's path on the loopback server (a real one is https://<endpoint>.<region>.inference.ml.azure.com/jobs).
SCORING = "/endpoint/jobs"
JOB_ROUTE = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
             f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/jobs")


def created(name: str = NAME) -> Reply:
    return 200, {}, {"id": f"{JOB_ROUTE}/{name}", "name": name, "type": "Microsoft.MachineLearningServices/jobs",
                     "properties": {"status": "NotStarted"}}


class Service:
    """ARM, the endpoint and the identity endpoint on one loopback server."""

    def __init__(self, loopback: LoopbackService) -> None:
        self.loopback = loopback
        loopback.default = self.reply

    def reply(self, recorded: Recorded) -> Reply:
        if recorded.path == "/msi/token":
            if recorded.headers.get("x-identity-header") != IDENTITY_HEADER:
                return 401, {}, {"error": "bad identity header"}
            resource = recorded.query["resource"][0]
            return 200, {}, {"access_token": TOKENS[resource], "expires_on": "4102444800", "resource": resource,
                             "token_type": "Bearer"}
        if recorded.path.endswith(f"/batchEndpoints/{ENDPOINT}"):
            return 200, {}, {"id": recorded.path, "name": ENDPOINT, "location": "westeurope", "properties": {
                "authMode": "AADToken", "scoringUri": f"{self.loopback.url}{SCORING}",
                "provisioningState": "Succeeded"}}
        return 404, {}, {"error": {"code": "NotFound", "message": recorded.path}}

    def invoke_with_sdk(self) -> Recorded:
        """What azure-ai-ml sends for the same invocation: MLClient at this server (AZUREML_DEV_URL_MFE)."""
        self.loopback.script(SCORING, created())
        client = MLClient(ManagedIdentityCredential(), SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE)
        encode = contract.encode_argument
        job = client.batch_endpoints.invoke(
            ENDPOINT, experiment_name=REQUEST.experiment_name, job_name=NAME, inputs={
                contract.INPUT_ACCOUNT_PARAMETER: Input(type="string", default=encode(REQUEST.input_account)),
                contract.DATASET_NAME_PARAMETER: Input(type="string", default=REQUEST.dataset_name),
                contract.SOURCE_PARAMETER: Input(type="string", default=encode(contract.source_version(
                    REQUEST.source_container, REQUEST.source_blob, REQUEST.source_etag))),
                contract.READ_OPTIONS_PARAMETER: Input(type="string", default=encode(REQUEST.read_options)),
                contract.OUTPUT_DATASTORE_PARAMETER: Input(type="string", default="workspaceblobstore"),
                contract.OUTPUT_PATH_PARAMETER: Input(type="string", default=f"azureml/{NAME}/extracted")},
            outputs={contract.OUTPUT_NAME: Output(
                type="uri_folder", path=f"azureml://datastores/workspaceblobstore/paths/azureml/{NAME}/extracted/")})
        assert job.name == NAME
        (posted,) = self.loopback.to(SCORING)
        self.loopback.requests.clear()
        return posted


class Waits:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def service(loopback: LoopbackService, monkeypatch: pytest.MonkeyPatch) -> Service:
    as_the_function(monkeypatch, loopback.url, IDENTITY_HEADER)
    return Service(loopback)


@pytest.fixture
def backend(service: Service) -> tuple[AzureMLV2Backend, Waits]:
    url = service.loopback.url
    settings = load_settings({
        "SHEETDROP_BACKEND": "azureml-v2", "INPUT_STORAGE__blobServiceUri": "https://example.blob.core.windows.net",
        "AZUREML_BATCH_ENDPOINT_URL": f"{url}{SCORING}", "AZUREML_ARM_URL": url,
        "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION, "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP,
        "AZUREML_WORKSPACE": WORKSPACE})
    # The Function's own credential chain: DefaultAzureCredential -> managed identity (App Service protocol).
    backend = azureml_v2.create(settings)
    waits = Waits()
    backend.service.retrier = Retrier(RetryPolicy(deadline_seconds=60, base_delay=0.5, max_delay=4), sleep=waits)
    return backend, waits


def test_invocation_matches_what_the_sdk_sends_and_reads_back_with_its_models(
        service: Service, backend: tuple[AzureMLV2Backend, Waits]) -> None:
    sdk = service.invoke_with_sdk()
    backend_, waits = backend
    service.loopback.script(SCORING, created())

    result = backend_.submit(REQUEST)

    (ours,) = service.loopback.to(SCORING)
    assert (ours.method, ours.path, ours.query) == (sdk.method, sdk.path, sdk.query) == ("POST", SCORING, {})
    for header in ("content-type", "authorization"):
        assert ours.headers[header] == sdk.headers[header]
    assert ours.headers["authorization"] == f"Bearer {TOKENS['https://ml.azure.com']}"
    assert ours.headers["repeatability_request-id"] and sdk.headers["repeatability_request-id"]
    (token,) = [r for r in service.loopback.requests if r.path == "/msi/token"]
    assert token.query["resource"] == [INVOKE_SCOPE.removesuffix("/.default")]

    body, expected = ours.json(), sdk.json()
    # What the SDK does not send but its model has: the job's tags and the blob version's key property.
    tags = body["properties"].pop("tags")
    assert body["properties"]["properties"].pop(SOURCE_KEY_PROPERTY) == KEY
    assert body == expected
    assert tags.pop("sheetdrop_submission_id")
    assert tags == REQUEST.tags

    job = BatchJobResource.deserialize(ours.json())
    assert job.properties.name == NAME
    assert job.properties.tags == ours.json()["properties"]["tags"]
    # Only literals, each as the step reads it (shell-inert); the output where the invocation puts it.
    assert all(isinstance(v, LiteralJobInput) for v in job.properties.input_data.values())
    literals = {k: contract.decode_argument(v.value) for k, v in job.properties.input_data.items()}
    assert literals == {"input_account": REQUEST.input_account, "dataset_name": "sales",
                        "read_options": '{"header_row": 2}', "output_datastore": "workspaceblobstore",
                        "output_path": f"azureml/{NAME}/extracted",
                        "source_version": contract.source_version("input", REQUEST.source_blob, REQUEST.source_etag)}
    output = job.properties.output_data[contract.OUTPUT_NAME]
    assert isinstance(output, UriFolderJobOutput)
    assert output.uri == f"azureml://datastores/workspaceblobstore/paths/azureml/{NAME}/extracted/"
    assert job.properties.properties == {"experimentName": "sheetdrop-extract", SOURCE_KEY_PROPERTY: KEY}
    # Every key we send is one the model knows: serialized back, the model writes exactly our body.
    assert job.serialize() == ours.json()

    assert result.run_id == NAME
    assert result.url == (f"https://ml.azure.com/runs/{NAME}?wsid=/subscriptions/{SUBSCRIPTION}"
                          f"/resourcegroups/{RESOURCE_GROUP}/workspaces/{WORKSPACE}")
    assert waits.delays == []


def test_a_named_deployment_is_sent_as_the_sdk_sends_it(service: Service, backend: tuple[AzureMLV2Backend, Waits]
                                                        ) -> None:
    service.loopback.script("/batchEndpoints/", (200, {}, {"value": [
        {"id": "d", "name": "blue", "location": "westeurope", "properties": {}}]}))
    client = MLClient(ManagedIdentityCredential(), SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE)
    service.loopback.script(SCORING, created())
    client.batch_endpoints.invoke(ENDPOINT, deployment_name="blue", inputs={
        "dataset_name": Input(type="string", default="x")})
    (sdk,) = service.loopback.to(SCORING)
    backend_, _ = backend
    backend_.deployment = "blue"
    service.loopback.script(SCORING, created())
    backend_.submit(REQUEST)
    ours = service.loopback.to(SCORING)[-1]
    assert ours.headers["azureml-model-deployment"] == sdk.headers["azureml-model-deployment"] == "blue"


def test_the_job_lookups_use_the_sdks_own_routes(service: Service, backend: tuple[AzureMLV2Backend, Waits]) -> None:
    client = MLClient(ManagedIdentityCredential(), SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE)
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        client.jobs.get(NAME)
    service.loopback.script(JOB_ROUTE, (200, {}, {"value": []}))
    assert list(client.jobs.list()) == []
    sdk_get, sdk_list = [r for r in service.loopback.requests if r.path.startswith("/subscriptions")]
    service.loopback.requests.clear()
    backend_, _ = backend
    service.loopback.script(JOB_ROUTE, (404, {}, {"error": {"code": "NotFound", "message": "no job"}}),
                            (200, {}, {"value": [], "nextLink": None}))

    assert backend_.find_runs(REQUEST.source_container, REQUEST.source_blob, REQUEST.source_etag) == []

    get, listing = [r for r in service.loopback.requests if r.path.startswith("/subscriptions")]
    assert (get.method, get.path, get.query) == ("GET", sdk_get.path, sdk_get.query)
    assert (listing.method, listing.path, listing.query) == ("GET", sdk_list.path, sdk_list.query)
    assert get.headers["authorization"] == f"Bearer {TOKENS['https://management.azure.com']}"
    assert ARM_SCOPE == "https://management.azure.com/.default"


def arm_job(name: str, key: str | None = None, source: dict[str, str] | None = None,
            tags: dict[str, str] | None = None) -> dict[str, Any]:
    """A pipeline job as ARM lists it (JobBase); with only what the service kept of the invocation."""
    inputs = {"source_version": {"jobInputType": "literal", "value": contract.encode_argument(
        contract.source_version(*source.values()))}} if source else {}
    return {"id": f"{JOB_ROUTE}/{name}", "name": name, "properties": {
        "jobType": "Pipeline", "properties": {SOURCE_KEY_PROPERTY: key} if key else {}, "tags": tags or {},
        "inputs": inputs}}


def test_find_runs_by_name_then_by_what_the_service_kept_across_pages(
        service: Service, backend: tuple[AzureMLV2Backend, Waits]) -> None:
    backend_, _ = backend
    service.loopback.script(f"{JOB_ROUTE}/{NAME}", (200, {}, arm_job(NAME, KEY)))
    assert backend_.find_runs(REQUEST.source_container, REQUEST.source_blob, REQUEST.source_etag) == [NAME]

    # The service named the job itself: its property, its tags or its source_version input find it (each answer
    # checked here, not trusted), whichever it kept.
    source = contract.source_tags(REQUEST.source_container, REQUEST.source_blob, REQUEST.source_etag)
    other = contract.source_tags(REQUEST.source_container, REQUEST.source_blob, '"0xOTHER"')
    service.loopback.script(f"{JOB_ROUTE}/{NAME}", (404, {}, {"error": {"code": "NotFound", "message": "x"}}))
    first_page = [arm_job("job-a", KEY), arm_job("job-b", "other"), arm_job("job-c", tags=source),
                  arm_job("job-d", tags=other)]
    service.loopback.script(JOB_ROUTE, (200, {}, {"value": first_page,
                                                  "nextLink": f"{service.loopback.url}{JOB_ROUTE}?page=2"}),
                            (200, {}, {"value": [arm_job("job-e", source=source), arm_job("job-f", source=other)]}))
    assert backend_.find_runs(REQUEST.source_container, REQUEST.source_blob, REQUEST.source_etag) == [
        "job-a", "job-c", "job-e"]
    assert service.loopback.to(JOB_ROUTE)[-1].query == {"page": ["2"]}


def test_transient_failures_are_retried_and_a_lost_answer_is_looked_up_first(
        service: Service, backend: tuple[AzureMLV2Backend, Waits]) -> None:
    backend_, waits = backend
    service.loopback.script(SCORING, (429, {"Retry-After": "7"}, {"error": {"code": "TooManyRequests"}}),
                            (503, {}, {}), "drop", created())
    service.loopback.script(JOB_ROUTE, (404, {}, {"error": {"code": "NotFound", "message": "x"}}),
                            (200, {}, {"value": []}))

    result = backend_.submit(REQUEST)

    assert result.run_id == NAME
    posts = service.loopback.to(SCORING)
    assert len(posts) == 4
    # The same submission each time: the same body and repeatability id.
    assert len({p.body for p in posts}) == 1
    assert len({p.headers["repeatability_request-id"] for p in posts}) == 1
    # Only the dropped connection was followed by a look-up; 429 and 503 say nothing was done.
    order = [r.path for r in service.loopback.requests if r.path != "/msi/token"]
    assert order == [SCORING, SCORING, SCORING, f"{JOB_ROUTE}/{NAME}", JOB_ROUTE, SCORING]
    assert waits.delays[0] >= 7 and len(waits.delays) == 3


def test_a_lost_answer_whose_job_exists_is_not_sent_again(service: Service,
                                                          backend: tuple[AzureMLV2Backend, Waits]) -> None:
    backend_, _ = backend
    service.loopback.script(SCORING, "drop")
    service.loopback.script(f"{JOB_ROUTE}/{NAME}", (200, {}, arm_job(NAME, KEY)))

    result = backend_.submit(REQUEST)

    assert result.run_id == NAME
    assert len(service.loopback.to(SCORING)) == 1


def test_a_taken_name_is_this_versions_job(service: Service, backend: tuple[AzureMLV2Backend, Waits]) -> None:
    backend_, _ = backend
    service.loopback.script(SCORING, (409, {}, {"error": {"code": "Conflict", "message": "job exists"}}))
    assert backend_.submit(REQUEST).run_id == NAME


@pytest.mark.parametrize(("status", "cause"), [
    (400, "whose inputs are input_account, output_datastore, dataset_name, source_version, read_options and "
          "output_path"), (401, "token was not accepted"),
    (403, "missing role"), (404, "no such batch endpoint"),
])
def test_client_errors_fail_at_once_naming_the_cause(service: Service, backend: tuple[AzureMLV2Backend, Waits],
                                                     status: int, cause: str) -> None:
    backend_, waits = backend
    service.loopback.script(SCORING, (status, {}, {"error": {"code": "E", "message": "service words"}}), created())
    with pytest.raises(SubmitError) as raised:
        backend_.submit(REQUEST)
    assert f"HTTP {status}" in str(raised.value) and cause in str(raised.value)
    assert "service words" in str(raised.value)
    assert len(service.loopback.to(SCORING)) == 1 and waits.delays == []


def test_the_v2_backend_says_which_jobs_ended(service: Service, backend: tuple[AzureMLV2Backend, Waits]) -> None:
    """What a cloud backfill's pace asks of v2: MLClient.jobs.get's route, and its terminal states."""
    from azure.ai.ml.operations._run_history_constants import RunHistoryConstants

    assert set(azureml_v2.client.ENDED_STATUSES) == {str(s) for s in RunHistoryConstants.TERMINAL_STATUSES}
    client = MLClient(ManagedIdentityCredential(), SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE)

    def job(name: str, status: str) -> Reply:
        return 200, {}, {"id": f"{JOB_ROUTE}/{name}", "name": name, "type": "Microsoft.MachineLearningServices/jobs",
                         "properties": {"jobType": "Pipeline", "status": status}}

    service.loopback.script(f"{JOB_ROUTE}/running", job("running", "Running"), job("running", "Running"))
    service.loopback.script(f"{JOB_ROUTE}/done", job("done", "Completed"))
    service.loopback.script(f"{JOB_ROUTE}/stuck", job("stuck", "NotResponding"))
    assert client.jobs.get("running").status == "Running"  # the answer the SDK itself reads
    (sdk_get,) = [r for r in service.loopback.requests if r.path.startswith("/subscriptions")]
    service.loopback.requests.clear()
    backend_, _ = backend

    assert backend_.ended(["running", "done", "stuck", "gone"]) == {"done", "stuck", "gone"}

    gets = [r for r in service.loopback.requests if r.path.startswith("/subscriptions")]
    assert [(r.method, r.path) for r in gets] == [("GET", f"{JOB_ROUTE}/{n}") for n in ("running", "done", "stuck",
                                                                                          "gone")]
    assert gets[0].query == sdk_get.query
    assert {r.headers["authorization"] for r in gets} == {f"Bearer {TOKENS['https://management.azure.com']}"}
