"""AzureML submit backend: run the published extract pipeline through its PipelineEndpoint REST API.

The Function side of the cloud path. It imports nothing of azureml (cold start, and
the azureml packages pin an azure-identity the Functions blob extension cannot use):
the request is built here to the service's contract, which the contract tests check
against azureml-pipeline-core's own REST client and models.

Routes (from azureml-pipeline-core / azureml-core, see docs/azureml.md):

* submit: ``POST {base}/pipelines/v1.0/subscriptions/{sub}/resourceGroups/{rg}/providers/
  Microsoft.MachineLearningServices/workspaces/{ws}/PipelineRuns/PipelineEndpointSubmit/Id/{id}``
  with a ``PipelineSubmissionInfo`` body; answers a ``PipelineRunEntity`` (``Id`` = run id).
* find runs: ``POST {base}/history/v1.0/.../workspaces/{ws}/experiments/{experiment}/runs:query``
  with a ``QueryParamsDto`` (OData ``filter`` on ``Tags/<name>``); answers a ``PaginatedRunDto``.

The token is for Azure Resource Manager's audience, ``https://management.core.windows.net//.default``:
that is what the SDK's own pipelines client sends (``get_authentication_header()`` -> ``_get_arm_token()``).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import requests

from sheetdrop.settings import STUDIO_URL
from sheetdrop.submit import SubmitError, SubmitRequest, SubmitResult
from sheetdrop.submit.retry import Retrier, RetryExhausted, RetryPolicy
from sheetdrop_contract import contract

if TYPE_CHECKING:
    from sheetdrop.settings import Settings

log = logging.getLogger(__name__)

#: ARM's audience with the trailing slash kept, as azureml-core's resource_to_scopes() builds it from
#: the cloud's active_directory_resource_id ('https://management.core.windows.net/').
TOKEN_SCOPE = "https://management.core.windows.net//.default"
#: The header azureml-pipeline-core's generated client sends with PipelineSubmissionInfo.
SUBMIT_CONTENT_TYPE = "application/json-patch+json; charset=utf-8"

WORKSPACE_SCOPE = (
    "subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
    "Microsoft.MachineLearningServices/workspaces/{workspace}"
)
SUBMIT_ROUTE = "/pipelines/v1.0/" + WORKSPACE_SCOPE + "/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}"
RUNS_QUERY_ROUTE = "/history/v1.0/" + WORKSPACE_SCOPE + "/experiments/{experiment}/runs:query"
SUBMISSION_TAG = "sheetdrop_submission_id"
#: Server errors after which the request may have been carried out all the same.
AMBIGUOUS_STATUSES = (500, 502, 504)
MAX_QUERY_PAGES = 20


class TokenCredential(Protocol):
    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Workspace:
    subscription_id: str
    resource_group: str
    name: str

    def scope(self) -> dict[str, str]:
        return {"subscription_id": self.subscription_id, "resource_group": self.resource_group,
                "workspace": self.name}


def _segment(value: str) -> str:
    return quote(value, safe="")


def submit_url(base_url: str, workspace: Workspace, endpoint_id: str) -> str:
    path = SUBMIT_ROUTE.format(**{k: _segment(v) for k, v in workspace.scope().items()},
                               endpoint_id=_segment(endpoint_id))
    return base_url.rstrip("/") + path


def runs_query_url(base_url: str, workspace: Workspace, experiment: str) -> str:
    path = RUNS_QUERY_ROUTE.format(**{k: _segment(v) for k, v in workspace.scope().items()},
                                   experiment=_segment(experiment))
    return base_url.rstrip("/") + path


def studio_run_url(run_id: str, workspace: Workspace, studio_url: str = STUDIO_URL) -> str:
    """The run's page in AzureML studio, in the form azureml-core's HasRunPortal builds."""
    return (f"{studio_url.rstrip('/')}/runs/{run_id}?wsid=/subscriptions/{workspace.subscription_id}"
            f"/resourcegroups/{workspace.resource_group}/workspaces/{workspace.name}")


def submission_body(request: SubmitRequest, submission_id: str) -> dict[str, Any]:
    """A ``PipelineSubmissionInfo`` in its wire form (keys from the SDK model's attribute map)."""
    tags = {
        **request.tags,
        **contract.source_tags(request.source_container, request.source_blob, request.source_etag),
        # Lets a person (or a later recovery) tell a duplicate made by a retried POST from a resubmission.
        SUBMISSION_TAG: submission_id,
    }
    return {
        "ExperimentName": request.experiment_name,
        "Description": request.description,
        # What the SDK's own PipelineEndpoint.submit sends (docs/azureml.md, "Submission body").
        "RunSource": "SDK",
        "ParameterAssignments": {
            contract.DATASET_NAME_PARAMETER: request.dataset_name,
            # The step tags its pipeline run with this at its start: run history finds the run by the
            # blob version even if the service did not keep the tags below.
            contract.SOURCE_PARAMETER: contract.source_version(
                request.source_container, request.source_blob, request.source_etag),
            contract.READ_OPTIONS_PARAMETER: request.read_options,
        },
        "DataPathAssignments": {
            contract.INPUT_PARAMETER: {
                "DataStoreName": request.datastore_name,
                "RelativePath": request.relative_path,
            },
        },
        "tags": tags,
    }


def _odata_string(value: str) -> str:
    # The SDK's own quoting (azureml._restclient._odata.helpers.value_to_odata_string) has no escape.
    return f'"{value}"'


def runs_filter(tags: dict[str, str]) -> str | None:
    """OData filter on tag equality, as azureml-core's get_filter_run_tag_equals writes it.

    Values containing a double quote cannot be written in that grammar; they are left to the
    client-side check instead of risking a filter that means something else.
    """
    exprs = [f"(Tags/{name} eq {_odata_string(value)})" for name, value in tags.items() if '"' not in value]
    if not exprs:
        return None
    return exprs[0] if len(exprs) == 1 else "(" + " and ".join(exprs) + ")"


def _service_error(response: requests.Response) -> str:
    """The service's own words: ErrorResponse {"error": {"code", "message"}} or the raw body."""
    try:
        payload = response.json()
    except ValueError:
        return " ".join(response.text.split())[:500]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return f"{code}: {message}" if code else str(message)
    return json.dumps(payload)[:500]


@dataclass
class AzureMLBackend:
    base_url: str
    workspace: Workspace
    endpoint_id: str
    experiment_name: str
    credential: TokenCredential
    input_datastore: str = ""
    studio_url: str = STUDIO_URL
    retrier: Retrier = field(default_factory=Retrier)
    session: requests.Session = field(default_factory=requests.Session)
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings, credential: TokenCredential | None = None) -> AzureMLBackend:
        aml = settings.azureml
        if aml is None:
            raise SubmitError("SHEETDROP_BACKEND is not azureml: no AzureML settings were read")
        return cls(
            base_url=aml.base_url,
            workspace=Workspace(aml.subscription_id, aml.resource_group, aml.workspace),
            endpoint_id=aml.endpoint_id,
            experiment_name=settings.experiment_name,
            credential=credential or _default_credential(aml.managed_identity_client_id),
            input_datastore=settings.input_datastore,
            studio_url=aml.studio_url,
            retrier=Retrier(RetryPolicy(deadline_seconds=aml.submit_deadline_seconds)),
        )

    # -- submit -----------------------------------------------------------------------------------

    @property
    def submit_url(self) -> str:
        return submit_url(self.base_url, self.workspace, self.endpoint_id)

    def submit(self, request: SubmitRequest) -> SubmitResult:
        body = submission_body(request, self.new_id())
        data = json.dumps(body).encode("utf-8")
        what = f"submit {request.source_container}/{request.source_blob} to PipelineEndpoint {self.endpoint_id}"
        try:
            response = self._post(self.submit_url, data, SUBMIT_CONTENT_TYPE, what,
                                  before_retry=lambda: self._already_started(request))
        except AlreadyStarted as started:
            url = studio_run_url(started.run_id, self.workspace, self.studio_url)
            log.warning("%s: an earlier attempt had started run %s although its answer was lost; not submitting "
                        "again: %s", what, started.run_id, url)
            return SubmitResult(run_id=started.run_id, url=url)
        if response.status_code >= 400:
            raise SubmitError(self._explain(response, request))
        try:
            run_id = response.json()["Id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SubmitError(
                f"{what}: HTTP {response.status_code} but the answer has no run id (PipelineRunEntity.Id): "
                f"{response.text[:300]!r}") from exc
        url = studio_run_url(run_id, self.workspace, self.studio_url)
        log.info("AzureML pipeline run %s submitted for %s/%s (etag %s): %s",
                 run_id, request.source_container, request.source_blob, request.source_etag, url)
        return SubmitResult(run_id=run_id, url=url)

    # -- find runs --------------------------------------------------------------------------------

    def find_runs(self, source_container: str, source_blob: str, source_etag: str) -> list[str]:
        """Pipeline runs of this experiment tagged with this blob version, newest first."""
        wanted = contract.source_tags(source_container, source_blob, source_etag)
        url = runs_query_url(self.base_url, self.workspace, self.experiment_name)
        what = f"find runs for {source_container}/{source_blob}"
        found: list[str] = []
        token: str | None = None
        for _ in range(MAX_QUERY_PAGES):
            query: dict[str, Any] = {"filter": runs_filter(wanted), "orderby": "CreatedUtc desc", "top": 100}
            if token:
                query["continuationToken"] = token
            response = self._post(url, json.dumps(query).encode("utf-8"), "application/json", what)
            if response.status_code == 404:
                # The experiment does not exist yet: nothing was ever submitted to it.
                return found
            if response.status_code >= 400:
                raise SubmitError(f"{what}: {self._status_cause(response.status_code)}: {_service_error(response)}")
            page = response.json()
            for run in page.get("value") or []:
                tags = run.get("tags") or {}
                # Child (step) runs carry their own tags; the claim is about pipeline runs. The client-side
                # check also covers values the server-side filter could not express.
                if not run.get("parentRunId") and all(tags.get(k) == v for k, v in wanted.items()):
                    found.append(run["runId"])
            token = page.get("continuationToken")
            if not token:
                break
        return found

    # -- HTTP -------------------------------------------------------------------------------------

    def _already_started(self, request: SubmitRequest) -> None:
        """Before a submission is sent again: a POST whose answer was lost (dropped connection,
        timeout, 5xx) may have started the run all the same, and a second POST would start a second."""
        runs = self.find_runs(request.source_container, request.source_blob, request.source_etag)
        if runs:
            raise AlreadyStarted(runs[0])

    def _post(self, url: str, data: bytes, content_type: str, what: str,
              before_retry: Callable[[], None] | None = None) -> requests.Response:
        # Whether the previous attempt may have reached the service and done its work: a dropped
        # connection, a timeout, or 500/502/504. 429/503/408 say the request was not processed.
        ambiguous = False

        def send(timeout: tuple[float, float]) -> requests.Response:
            nonlocal ambiguous
            if ambiguous and before_retry is not None:
                before_retry()
            headers = {"Authorization": f"Bearer {self._token()}", "Content-Type": content_type,
                       "Accept": "application/json", "x-ms-client-request-id": self.new_id()}
            try:
                response = self.session.post(url, data=data, headers=headers, timeout=timeout)
            except (requests.ConnectionError, requests.Timeout):
                ambiguous = True
                raise
            # Once an attempt may have started the run, every later resend checks first.
            ambiguous = ambiguous or response.status_code in AMBIGUOUS_STATUSES
            return response

        try:
            return self.retrier.call(send, what)
        except RetryExhausted as exc:
            raise SubmitError(f"{exc} (AzureML at {self.base_url} kept failing; the blob will be retried "
                              "by the trigger)") from exc

    def _token(self) -> str:
        return entra_token(self.credential, TOKEN_SCOPE)

    def _status_cause(self, status: int) -> str:
        ws = self.workspace
        where = f"workspace {ws.name} (resource group {ws.resource_group}, subscription {ws.subscription_id})"
        if status == 401:
            return (f"HTTP 401: the token was not accepted by {where}: the identity's token is for the wrong "
                    "tenant or audience, or has expired")
        if status == 403:
            return (f"HTTP 403: missing role: the Function's identity may not submit runs in {where}; grant it "
                    "'AzureML Data Scientist' on the workspace (see docs/azureml.md)")
        if status == 404:
            return (f"HTTP 404: bad endpoint id or workspace: PipelineEndpoint {self.endpoint_id!r} was not found in "
                    f"{where}; run `python -m pipeline.publish` and set the id (or REST URL) it prints")
        return f"HTTP {status}"

    def _explain(self, response: requests.Response, request: SubmitRequest) -> str:
        status = response.status_code
        detail = _service_error(response)
        cause = self._status_cause(status)
        if status == 400:
            if "datastore" in detail.lower() or "data store" in detail.lower():
                cause = (f"HTTP 400: unknown datastore: {request.datastore_name!r} is not registered in workspace "
                         f"{self.workspace.name} (register it with `python -m pipeline.datastore`, or fix "
                         "INPUT_DATASTORE)")
            else:
                cause = ("HTTP 400: the submission was rejected; check that the PipelineEndpoint's default "
                         f"pipeline has the parameters {contract.INPUT_PARAMETER!r} (DataPath) and "
                         f"{contract.DATASET_NAME_PARAMETER!r}, i.e. was published by `python -m pipeline.publish`")
        return (f"AzureML refused to run {request.source_container}/{request.source_blob} "
                f"(PipelineEndpoint {self.endpoint_id}): {cause}. Service said: {detail}")


def entra_token(credential: TokenCredential, scope: str) -> str:
    try:
        return credential.get_token(scope).token
    except Exception as exc:  # azure-identity raises several types; all mean "no token"
        raise SubmitError(
            f"could not get a Microsoft Entra token for {scope} from {type(credential).__name__}: {exc}. "
            "In Azure, enable the Function app's managed identity (for a user-assigned identity set "
            "AZUREML_MANAGED_IDENTITY_CLIENT_ID); locally, run `az login`") from exc


class AlreadyStarted(Exception):
    """An earlier attempt started the run (or job) although its answer was lost: do not submit again."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def _default_credential(managed_identity_client_id: str | None) -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    if managed_identity_client_id:
        return DefaultAzureCredential(managed_identity_client_id=managed_identity_client_id)
    return DefaultAzureCredential()
