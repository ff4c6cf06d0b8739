"""The v2 backend's client: invoke the batch endpoint that deploys the extract pipeline component.

Imports nothing of azure-ai-ml (cold start, and it is heavy): the request is built here to the
service's contract, which tests/aml2 checks against azure-ai-ml's own ``BatchEndpointOperations.invoke``
and its REST models. Sources for every line: docs/azureml-v2.md.

* invoke: ``POST <scoring URI>`` (``https://<endpoint>.<region>.inference.ml.azure.com/jobs``) with a
  ``BatchJobResource`` body; token for ``https://ml.azure.com/.default``; answers the job (``name``).
* find jobs (lost answers, claim takeover): ARM ``GET …/workspaces/{ws}/jobs/{name}`` for the name this
  backend gave the job, then ``GET …/workspaces/{ws}/jobs?properties=<key>=<value>``; token for ARM.

The job is named after the blob version (:func:`job_name`), so a resend after a lost answer asks
for the same name and the look-up knows what to ask for.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from sheetdrop.submit import SubmitError, SubmitRequest, SubmitResult
from sheetdrop.submit.service import AlreadyStarted, ServiceClient, service_error
from sheetdrop.submit.workspace import STUDIO_URL, Workspace, studio_run_url
from sheetdrop_contract import contract

log = logging.getLogger(__name__)

#: azure-ai-ml asks for _resource_to_scopes(_get_aml_resource_id_from_metadata()): the cloud's
#: aml_resource_id ("https://ml.azure.com/", stripped of its slash) + "/.default".
INVOKE_SCOPE = "https://ml.azure.com/.default"
#: MLClient's ARM scope: resource manager endpoint + "/.default".
ARM_SCOPE = "https://management.azure.com/.default"
#: azure-ai-ml's EndpointInvokeFields: the repeatability id (sent once per invoke, the same on its
#: own resends) and the header that picks a deployment other than the default one.
REPEATABILITY_HEADER = "repeatability_request-id"
DEPLOYMENT_HEADER = "azureml-model-deployment"
#: The ARM jobs API version azure-ai-ml 1.34's MLClient.jobs.get() sends.
JOBS_API_VERSION = "2024-01-01-preview"
#: A job property holding the blob version's key: ARM's jobs list filters on properties by value.
SOURCE_KEY_PROPERTY = "sheetdrop_source_key"
#: The batch job's own property that names the experiment (what invoke(experiment_name=) sends).
EXPERIMENT_PROPERTY = "experimentName"
MAX_LIST_PAGES = 20
#: As in v1: each invocation's own id, among the job's tags.
SUBMISSION_TAG = "sheetdrop_submission_id"


def source_key(container: str, blob: str, etag: str) -> str:
    """A short fixed-length key for a blob version: what names its job and is searched for."""
    return hashlib.sha256(contract.source_version(container, blob, etag).encode("utf-8")).hexdigest()[:32]


def job_name(container: str, blob: str, etag: str) -> str:
    """The job's name: one per blob version (lowercase letters, digits and -; a job name must be unique
    in the workspace). A resend after a lost answer asks for the same name."""
    return f"sheetdrop-{source_key(container, blob, etag)}"


def shell_safe_json(text: str) -> str:
    """The same JSON without a single quote: the component passes these inputs to the step single-quoted on
    its command line (pipeline/v2/component.yml), and in JSON a ' can only stand inside a string, where
    the escape \\u0027 means the same character."""
    return text.replace("'", "\\u0027")


def invocation_body(request: SubmitRequest, name: str, submission_id: str) -> dict[str, Any]:
    """A ``BatchJobResource`` in its wire form: what invoke(inputs=…, job_name=…, experiment_name=…)
    sends, plus the job's ``tags`` and one more property (the SDK sends neither; the model has both)."""
    literal = {contract.DATASET_NAME_PARAMETER: request.dataset_name,
               contract.SOURCE_PARAMETER: shell_safe_json(contract.source_version(
                   request.source_container, request.source_blob, request.source_etag)),
               contract.READ_OPTIONS_PARAMETER: shell_safe_json(request.read_options)}
    inputs: dict[str, Any] = {contract.INPUT_PARAMETER: {
        "jobInputType": "UriFile", "uri": contract.datastore_uri(request.datastore_name, request.relative_path)}}
    inputs |= {key: {"jobInputType": "Literal", "value": value} for key, value in literal.items()}
    tags = {**request.tags,
            **contract.source_tags(request.source_container, request.source_blob, request.source_etag),
            SUBMISSION_TAG: submission_id}
    return {"properties": {
        "inputData": inputs,
        "name": name,
        "properties": {EXPERIMENT_PROPERTY: request.experiment_name,
                       SOURCE_KEY_PROPERTY: source_key(request.source_container, request.source_blob,
                                                       request.source_etag)},
        "tags": tags,
    }}


def jobs_url(arm_url: str, workspace: Workspace, name: str | None = None) -> str:
    return f"{arm_url.rstrip('/')}/{workspace.path()}/jobs" + (f"/{quote(name, safe='')}" if name else "")


@dataclass
class AzureMLV2Backend:
    endpoint_url: str
    workspace: Workspace
    experiment_name: str
    service: ServiceClient
    deployment: str | None = None
    arm_url: str = "https://management.azure.com"
    studio_url: str = STUDIO_URL

    # -- submit -----------------------------------------------------------------------------------

    def submit(self, request: SubmitRequest) -> SubmitResult:
        name = job_name(request.source_container, request.source_blob, request.source_etag)
        data = json.dumps(invocation_body(request, name, self.service.new_id())).encode("utf-8")
        # One repeatability id for every attempt of this submission, as the SDK's own resend loop keeps it.
        headers = {"Content-Type": "application/json", REPEATABILITY_HEADER: self.service.new_id()}
        if self.deployment:
            headers[DEPLOYMENT_HEADER] = self.deployment
        what = f"invoke batch endpoint {self.endpoint_url} for {request.source_container}/{request.source_blob}"
        try:
            response = self.service.send("POST", self.endpoint_url, scope=INVOKE_SCOPE, what=what, data=data,
                                         headers=headers, look_first=lambda: self._existing_job(request))
        except AlreadyStarted as started:
            log.warning("%s: an earlier attempt had created job %s although its answer was lost; not invoking "
                        "again", what, started.run_id)
            return self._result(started.run_id)
        if response.status_code == 409:
            # The name is taken: this blob version's job exists already (a resend the service refused).
            log.warning("%s: job %s exists already (HTTP 409); taking it as this version's job", what, name)
            return self._result(name)
        if response.status_code >= 400:
            raise SubmitError(f"AzureML refused to run {request.source_container}/{request.source_blob} "
                              f"(batch endpoint {self.endpoint_url}): {self._cause(response.status_code)}. "
                              f"Service said: {service_error(response)}")
        try:
            returned = response.json()["name"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SubmitError(f"{what}: HTTP {response.status_code} but the answer has no job name "
                              f"(BatchJobResource.name): {response.text[:300]!r}") from exc
        if returned != name:
            # Recovery still has the property to search by (find_runs), but say so: it is a contract change.
            log.warning("%s: asked for job name %s, the service named it %s", what, name, returned)
        result = self._result(returned)
        log.info("AzureML v2 job %s submitted for %s/%s (etag %s): %s", returned, request.source_container,
                 request.source_blob, request.source_etag, result.url)
        return result

    def _existing_job(self, request: SubmitRequest) -> str | None:
        """Before an invocation is sent again: one whose answer was lost may have created the job."""
        found = self.find_runs(request.source_container, request.source_blob, request.source_etag)
        return found[0] if found else None

    def _result(self, job: str) -> SubmitResult:
        return SubmitResult(run_id=job, url=studio_run_url(job, self.workspace, self.studio_url))

    # -- find jobs --------------------------------------------------------------------------------

    def find_runs(self, source_container: str, source_blob: str, source_etag: str) -> list[str]:
        """Jobs made for this blob version: the one with its name, else those with its key property."""
        name = job_name(source_container, source_blob, source_etag)
        what = f"find the job of {source_container}/{source_blob}"
        response = self._get(jobs_url(self.arm_url, self.workspace, name), {"api-version": JOBS_API_VERSION}, what)
        if response.status_code == 200:
            return [name]
        if response.status_code != 404:
            raise SubmitError(f"{what}: {self._cause(response.status_code)}: {service_error(response)}")
        key = source_key(source_container, source_blob, source_etag)
        found: list[str] = []
        url: str | None = jobs_url(self.arm_url, self.workspace)
        params: dict[str, str] | None = {"api-version": JOBS_API_VERSION, "properties": f"{SOURCE_KEY_PROPERTY}={key}"}
        for _ in range(MAX_LIST_PAGES):
            if url is None:
                break
            response = self._get(url, params, what)
            if response.status_code >= 400:
                raise SubmitError(f"{what}: {self._cause(response.status_code)}: {service_error(response)}")
            page = response.json()
            for job in page.get("value") or []:
                # Checked here too: the filter is the service's, the claim is ours.
                if (job.get("properties") or {}).get("properties", {}).get(SOURCE_KEY_PROPERTY) == key:
                    found.append(job["name"])
            url, params = page.get("nextLink"), None  # nextLink carries its own query
        return found

    # -- HTTP -------------------------------------------------------------------------------------

    def _get(self, url: str, params: dict[str, str] | None, what: str) -> requests.Response:
        return self.service.send("GET", url, scope=ARM_SCOPE, what=what, params=params)

    def _cause(self, status: int) -> str:
        where = self.workspace.describe()
        causes = {
            400: "HTTP 400: the invocation was rejected; check that the endpoint's default deployment is the "
                 "sheetdrop pipeline component (`sheetdrop publish --v2`), whose inputs are "
                 f"{contract.INPUT_PARAMETER} (uri_file), {contract.DATASET_NAME_PARAMETER}, "
                 f"{contract.SOURCE_PARAMETER} and {contract.READ_OPTIONS_PARAMETER}",
            401: f"HTTP 401: the token was not accepted by {where}: wrong tenant or audience, or expired",
            403: f"HTTP 403: missing role: the Function's identity may not invoke the endpoint or read jobs in "
                 f"{where}; grant it 'AzureML Data Scientist' on the workspace (see docs/azureml-v2.md)",
            404: f"HTTP 404: no such batch endpoint or deployment ({self.endpoint_url}"
                 f"{', deployment ' + self.deployment if self.deployment else ''}); run `sheetdrop publish --v2` "
                 "and set AZUREML_BATCH_ENDPOINT_URL to the URL it prints",
        }
        return causes.get(status, f"HTTP {status}")
