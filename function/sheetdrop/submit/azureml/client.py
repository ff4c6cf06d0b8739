"""The v1 backend's client: run the published extract pipeline through its PipelineEndpoint REST API.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from sheetdrop.submit import SubmitError, SubmitRequest, SubmitResult
from sheetdrop.submit.service import AlreadyStarted, ServiceClient, service_error
from sheetdrop.submit.workspace import STUDIO_URL, Workspace, studio_run_url
from sheetdrop_contract import contract

log = logging.getLogger(__name__)

#: ARM's audience with the trailing slash kept, as azureml-core's resource_to_scopes() builds it from
#: the cloud's active_directory_resource_id ('https://management.core.windows.net/').
TOKEN_SCOPE = "https://management.core.windows.net//.default"
#: The header azureml-pipeline-core's generated client sends with PipelineSubmissionInfo.
SUBMIT_CONTENT_TYPE = "application/json-patch+json; charset=utf-8"

#: Tags every submission with its own id: a person (or a later recovery) can tell a duplicate made by a
#: retried POST from a resubmission.
SUBMISSION_TAG = "sheetdrop_submission_id"
MAX_QUERY_PAGES = 20
#: A run's last states (azureml-core Run.get_status: "Completed", "Failed", "Canceled"; _restclient RunStatus).
ENDED_STATUSES = ("Completed", "Failed", "Canceled")


def submit_url(base_url: str, workspace: Workspace, endpoint_id: str) -> str:
    return f"{base_url.rstrip('/')}/pipelines/v1.0/{workspace.path()}/PipelineRuns/PipelineEndpointSubmit/Id/" \
        f"{quote(endpoint_id, safe='')}"


def run_url(base_url: str, workspace: Workspace, run_id: str) -> str:
    """One run by id (azureml-core's RunOperations.get_workspace_run route), answering a RunDto."""
    return f"{base_url.rstrip('/')}/history/v1.0/{workspace.path()}/runs/{quote(run_id, safe='')}"


def runs_query_url(base_url: str, workspace: Workspace, experiment: str) -> str:
    return f"{base_url.rstrip('/')}/history/v1.0/{workspace.path()}/experiments/{quote(experiment, safe='')}/runs:query"


def submission_body(request: SubmitRequest, submission_id: str) -> dict[str, Any]:
    """A ``PipelineSubmissionInfo`` in its wire form (keys from the SDK model's attribute map)."""
    tags = {
        **request.tags,
        **contract.source_tags(request.source_container, request.source_blob, request.source_etag, request.attempt),
        # Lets a person (or a later recovery) tell a duplicate made by a retried POST from a resubmission.
        SUBMISSION_TAG: submission_id,
    }
    return {
        "ExperimentName": request.experiment_name,
        "Description": request.description,
        # What the SDK's own PipelineEndpoint.submit sends (docs/azureml.md, "Submission body").
        "RunSource": "SDK",
        # String parameters only (no DataPath: the step reads the blob version itself), each encoded.
        "ParameterAssignments": request.step_parameters(),
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


@dataclass
class AzureMLBackend:
    base_url: str
    workspace: Workspace
    endpoint_id: str
    experiment_name: str
    service: ServiceClient
    input_datastore: str = ""
    studio_url: str = STUDIO_URL

    # -- submit -----------------------------------------------------------------------------------

    @property
    def submit_url(self) -> str:
        return submit_url(self.base_url, self.workspace, self.endpoint_id)

    def submit(self, request: SubmitRequest) -> SubmitResult:
        body = submission_body(request, self.service.new_id())
        data = json.dumps(body).encode("utf-8")
        what = f"submit {request.source_container}/{request.source_blob} to PipelineEndpoint {self.endpoint_id}"
        try:
            response = self._post(self.submit_url, data, SUBMIT_CONTENT_TYPE, what,
                                  look_first=lambda: self._existing_run(request))
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

    def find_runs(self, source_container: str, source_blob: str, source_etag: str, attempt: int = 1) -> list[str]:
        """Pipeline runs of this experiment tagged with this attempt of a blob version, newest first."""
        wanted = contract.source_tags(source_container, source_blob, source_etag, attempt)
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
                raise SubmitError(f"{what}: {self._status_cause(response.status_code)}: {service_error(response)}")
            page = response.json()
            for run in page.get("value") or []:
                tags = run.get("tags") or {}
                # Child (step) runs carry their own tags; the claim is about pipeline runs. The client-side
                # check also covers values the server-side filter could not express.
                # A re-run's runs carry the version's tags too: the attempt tells them apart (none: attempt 1).
                if not run.get("parentRunId") and all(tags.get(k) == v for k, v in wanted.items()) \
                        and contract.attempt_of(tags) == attempt:
                    found.append(run["runId"])
            token = page.get("continuationToken")
            if not token:
                break
        return found

    def ended(self, run_ids: list[str]) -> set[str]:
        """Which of these pipeline runs have ended (a backfill's pace): one GET each."""
        found = set()
        for run_id in run_ids:
            response = self.service.send("GET", run_url(self.base_url, self.workspace, run_id), scope=TOKEN_SCOPE,
                                         what=f"read run {run_id}")
            if response.status_code == 404:  # a run the workspace does not have is not running either
                found.add(run_id)
            elif response.status_code >= 400:
                raise SubmitError(f"read run {run_id}: {self._status_cause(response.status_code)}: "
                                  f"{service_error(response)}")
            elif response.json().get("status") in ENDED_STATUSES:
                found.add(run_id)
        return found

    def _existing_run(self, request: SubmitRequest) -> str | None:
        """Before a submission is sent again: a POST whose answer was lost may have started the run."""
        runs = self.find_runs(request.source_container, request.source_blob, request.source_etag, request.attempt)
        return runs[0] if runs else None

    # -- HTTP -------------------------------------------------------------------------------------

    def _post(self, url: str, data: bytes, content_type: str, what: str,
              look_first: Callable[[], str | None] | None = None) -> requests.Response:
        return self.service.send("POST", url, scope=TOKEN_SCOPE, what=what, data=data, look_first=look_first,
                                 headers={"Content-Type": content_type})

    def _status_cause(self, status: int) -> str:
        where = self.workspace.describe()
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
        detail = service_error(response)
        cause = self._status_cause(status)
        if status == 400:
            cause = ("HTTP 400: the submission was rejected; check that the PipelineEndpoint's default pipeline has "
                     f"the parameters {', '.join(request.step_parameters())}, i.e. was published by "
                     "`python -m pipeline.publish` of this version")
        return (f"AzureML refused to run {request.source_container}/{request.source_blob} "
                f"(PipelineEndpoint {self.endpoint_id}): {cause}. Service said: {detail}")
