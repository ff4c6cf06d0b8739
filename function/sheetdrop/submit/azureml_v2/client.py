"""The v2 backend's client: invoke the batch endpoint that deploys the extract pipeline component.

Imports nothing of azure-ai-ml (cold start, and it is heavy): the request is built here to the
service's contract, which tests/aml2 checks against azure-ai-ml's own ``BatchEndpointOperations.invoke``
and its REST models. Sources for every line: docs/azureml-v2.md.

* invoke: ``POST <scoring URI>`` (``https://<endpoint>.<region>.inference.ml.azure.com/jobs``) with a
  ``BatchJobResource`` body; token for ``https://ml.azure.com/.default``; answers the job (``name``).
* find jobs (lost answers, claim takeover): ARM ``GET …/workspaces/{ws}/jobs/{name}`` for the name this
  backend asked for, then the workspace's newest jobs (``GET …/workspaces/{ws}/jobs``), each checked for this
  blob version: its name, its key property, its source tags, or its ``source_version`` input — the one thing
  the service must keep, since the job cannot run without it; token for ARM.

The job is named after the blob version (:func:`job_name`), so a resend after a lost answer asks for the same
name; the output's place is chosen here too (:func:`output_path`) and handed to the step.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from sheetdrop.submit import BatchRequest, SubmitError, SubmitRequest, SubmitResult
from sheetdrop.submit.service import AlreadyStarted, ServiceClient, service_error
from sheetdrop.submit.workspace import STUDIO_URL, Workspace, studio_run_url
from sheetdrop_contract import batch as batch_contract
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
#: A job property holding the blob version's key (if the service copies the invocation's properties to the job).
SOURCE_KEY_PROPERTY = "sheetdrop_source_key"
#: The batch job's own property that names the experiment (what invoke(experiment_name=) sends).
EXPERIMENT_PROPERTY = "experimentName"
#: How far back a look-up reads the workspace's jobs (the service pages them; a lost answer is looked up within
#: the submit deadline, a claim takeover CLAIM_STALE_SECONDS later: either way among the newest).
MAX_LIST_PAGES = 20
#: As in v1: each invocation's own id, among the job's tags.
SUBMISSION_TAG = "sheetdrop_submission_id"
#: A job's last states: azure-ai-ml's RunHistoryConstants.TERMINAL_STATUSES (operations/_run_history_constants.py),
#: the states after which MLClient.jobs.stream stops waiting. A paused job holds no node either.
ENDED_STATUSES = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")


def source_key(container: str, blob: str, etag: str, attempt: int = 1) -> str:
    """A short fixed-length key for an attempt of a blob version: what names its job and is searched for."""
    return hashlib.sha256(contract.source_version(container, blob, etag, attempt).encode("utf-8")).hexdigest()[:32]


def job_name(container: str, blob: str, etag: str, attempt: int = 1) -> str:
    """The job's name: one per attempt of a blob version (lowercase letters, digits and -; a job name must be
    unique in the workspace). A resend after a lost answer asks for the same name."""
    return f"sheetdrop-{source_key(container, blob, etag, attempt)}"


def output_path(name: str) -> str:
    """Where this job's output goes on the output datastore: chosen here, at invocation, and handed to the step
    too, so the step never asks the service (a pipeline child job read back has no outputs)."""
    return contract.output_relative_path(name)


def literal_inputs(request: SubmitRequest, name: str, output_datastore: str) -> dict[str, str]:
    """The pipeline component's inputs for this blob version, each as the step reads it (encoded: AzureML
    substitutes them as raw text into a command bash runs): the step's parameters, and where its output goes."""
    return {**request.step_parameters(),
            contract.OUTPUT_DATASTORE_PARAMETER: contract.encode_argument(output_datastore),
            contract.OUTPUT_PATH_PARAMETER: contract.encode_argument(output_path(name))}


def invocation_body(request: SubmitRequest, name: str, submission_id: str, output_datastore: str) -> dict[str, Any]:
    """A ``BatchJobResource`` in its wire form: what invoke(inputs=…, outputs=…, job_name=…, experiment_name=…)
    sends, plus the job's ``tags`` and one more property (the SDK sends neither; the model has both). The output
    goes where ``output_path`` says, on ``output_datastore``: the same place the step is told."""
    inputs = {key: {"jobInputType": "Literal", "value": value}
              for key, value in literal_inputs(request, name, output_datastore).items()}
    outputs = {contract.OUTPUT_NAME: {"jobOutputType": "UriFolder",
                                      "uri": contract.datastore_uri(output_datastore, f"{output_path(name)}/")}}
    tags = {**request.tags,
            **contract.source_tags(request.source_container, request.source_blob, request.source_etag),
            SUBMISSION_TAG: submission_id}
    return {"properties": {
        "inputData": inputs,
        "name": name,
        "outputData": outputs,
        "properties": {EXPERIMENT_PROPERTY: request.experiment_name,
                       SOURCE_KEY_PROPERTY: source_key(request.source_container, request.source_blob,
                                                       request.source_etag, request.attempt)},
        "tags": tags,
    }}


def is_this_version(job: dict[str, Any], name: str, container: str, blob: str, etag: str, attempt: int = 1) -> bool:
    """An ARM job (JobBase) made for this attempt of a blob version: by the name asked for, the key property, the
    source tags, or the ``source_version`` input the service must keep for the job to run at all."""
    properties = job.get("properties") or {}
    wanted = contract.source_tags(container, blob, etag, attempt)
    tags = properties.get("tags") or {}
    value = ((properties.get("inputs") or {}).get(contract.SOURCE_PARAMETER) or {}).get("value")
    try:
        source = contract.parse_source_version(contract.decode_argument(value)) if value else {}
    except ValueError:
        source = {}
    key = source_key(container, blob, etag, attempt)
    return (job.get("name") == name
            or (properties.get("properties") or {}).get(SOURCE_KEY_PROPERTY) == key
            or (all(tags.get(k) == v for k, v in wanted.items()) and contract.attempt_of(tags) == attempt)
            or source == wanted
            or key in {version.key() for version in manifest_of(job)})


def manifest_of(job: dict[str, Any]) -> list[batch_contract.PinnedVersion]:
    """The versions of a batch job, from the ``manifest`` input the service must keep for it to run ([] otherwise)."""
    value = (((job.get("properties") or {}).get("inputs") or {}).get(batch_contract.MANIFEST_PARAMETER) or {}).get(
        "value")
    try:
        return batch_contract.parse_manifest(contract.decode_argument(value)) if value else []
    except ValueError:
        return []


def batch_job_name(batch_id: str) -> str:
    """A batch job's name, from the submitter's batch id: a resend asks for the same name."""
    return f"sheetdrop-batch-{hashlib.sha256(batch_id.encode('utf-8')).hexdigest()[:32]}"


def batch_invocation_body(batch: BatchRequest, name: str, submission_id: str, output_datastore: str) -> dict[str, Any]:
    """A ``BatchJobResource`` for the batch deployment (pipeline/v2/batch_pipeline.yml): the manifest and the input
    account as literals, the output's place chosen here as for a single version's job."""
    literals = {contract.INPUT_ACCOUNT_PARAMETER: contract.encode_argument(batch.first.input_account),
                batch_contract.MANIFEST_PARAMETER: batch.manifest(),
                contract.OUTPUT_DATASTORE_PARAMETER: contract.encode_argument(output_datastore),
                contract.OUTPUT_PATH_PARAMETER: contract.encode_argument(output_path(name))}
    return {"properties": {
        "inputData": {key: {"jobInputType": "Literal", "value": value} for key, value in literals.items()},
        "name": name,
        "outputData": {contract.OUTPUT_NAME: {"jobOutputType": "UriFolder", "uri": contract.datastore_uri(
            output_datastore, f"{output_path(name)}/")}},
        "properties": {EXPERIMENT_PROPERTY: batch.first.experiment_name},
        "tags": {batch_contract.BATCH_TAG: batch.batch_id, SUBMISSION_TAG: submission_id},
    }}


def jobs_url(arm_url: str, workspace: Workspace, name: str | None = None) -> str:
    return f"{arm_url.rstrip('/')}/{workspace.path()}/jobs" + (f"/{quote(name, safe='')}" if name else "")


@dataclass
class AzureMLV2Backend:
    endpoint_url: str
    workspace: Workspace
    experiment_name: str
    service: ServiceClient
    #: Where the output goes (OUTPUT_DATASTORE): the invocation names it, and the step registers on it.
    output_datastore: str = "workspaceblobstore"
    deployment: str | None = None
    arm_url: str = "https://management.azure.com"
    studio_url: str = STUDIO_URL

    # -- submit -----------------------------------------------------------------------------------

    def submit(self, request: SubmitRequest) -> SubmitResult:
        name = job_name(request.source_container, request.source_blob, request.source_etag, request.attempt)
        what = f"{request.source_container}/{request.source_blob}"
        return self._invoke(invocation_body(request, name, self.service.new_id(), self.output_datastore), name,
                            self.deployment, what, lambda: self._existing_job(request))

    def _invoke(self, body: dict[str, Any], name: str, deployment: str | None, what: str,
                look_first: Callable[[], str | None]) -> SubmitResult:
        """POST an invocation asking for job ``name``; after an answer that may have been lost, ``look_first`` says
        whether its job exists."""
        # One repeatability id for every attempt of this submission, as the SDK's own resend loop keeps it.
        headers = {"Content-Type": "application/json", REPEATABILITY_HEADER: self.service.new_id()}
        if deployment:
            headers[DEPLOYMENT_HEADER] = deployment
        doing = f"invoke batch endpoint {self.endpoint_url} for {what}"
        try:
            response = self.service.send("POST", self.endpoint_url, scope=INVOKE_SCOPE, what=doing,
                                         data=json.dumps(body).encode("utf-8"), headers=headers, look_first=look_first)
        except AlreadyStarted as started:
            log.warning("%s: an earlier attempt had created job %s although its answer was lost; not invoking "
                        "again", doing, started.run_id)
            return self._result(started.run_id)
        if response.status_code == 409:
            # The name is taken: this job exists already (a resend the service refused).
            log.warning("%s: job %s exists already (HTTP 409); taking it as its job", doing, name)
            return self._result(name)
        if response.status_code >= 400:
            raise SubmitError(f"AzureML refused to run {what} (batch endpoint {self.endpoint_url}"
                              f"{f', deployment {deployment}' if deployment else ''}): "
                              f"{self._cause(response.status_code)}. Service said: {service_error(response)}")
        try:
            returned = response.json()["name"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SubmitError(f"{doing}: HTTP {response.status_code} but the answer has no job name "
                              f"(BatchJobResource.name): {response.text[:300]!r}") from exc
        if returned != name:
            # Recovery still finds it by its inputs (find_runs); the output is where the invocation said.
            log.warning("%s: asked for job name %s, the service named it %s", doing, name, returned)
        result = self._result(returned)
        log.info("AzureML v2 job %s submitted for %s: %s", returned, what, result.url)
        return result

    def _existing_job(self, request: SubmitRequest) -> str | None:
        """Before an invocation is sent again: one whose answer was lost may have created the job."""
        found = self.find_runs(request.source_container, request.source_blob, request.source_etag, request.attempt)
        return found[0] if found else None

    def _result(self, job: str) -> SubmitResult:
        return SubmitResult(run_id=job, url=studio_run_url(job, self.workspace, self.studio_url))

    # -- find jobs --------------------------------------------------------------------------------

    def find_runs(self, source_container: str, source_blob: str, source_etag: str, attempt: int = 1) -> list[str]:
        """Jobs made for this attempt of a blob version: the one with its name, else any of the workspace's newest
        jobs that :func:`is_this_version` recognises (whatever the service kept of the name, properties and tags)."""
        name = job_name(source_container, source_blob, source_etag, attempt)
        return self._find(name, f"find the job of {source_container}/{source_blob}",
                          lambda job: is_this_version(job, name, source_container, source_blob, source_etag, attempt))

    def _find(self, name: str, what: str, matches: Callable[[dict[str, Any]], bool]) -> list[str]:
        """The job named ``name``, else the workspace's newest jobs that ``matches`` (whatever the service kept of the
        name, properties and tags)."""
        response = self._get(jobs_url(self.arm_url, self.workspace, name), {"api-version": JOBS_API_VERSION}, what)
        if response.status_code == 200:
            return [name]
        if response.status_code != 404:
            raise SubmitError(f"{what}: {self._cause(response.status_code)}: {service_error(response)}")
        found: list[str] = []
        url: str | None = jobs_url(self.arm_url, self.workspace)
        # As MLClient.jobs.list() asks (operations/_job_operations.py: list_view_type defaults to ActiveOnly).
        params: dict[str, str] | None = {"api-version": JOBS_API_VERSION, "listViewType": "ActiveOnly"}
        for _ in range(MAX_LIST_PAGES):
            if url is None:
                break
            response = self._get(url, params, what)
            if response.status_code >= 400:
                raise SubmitError(f"{what}: {self._cause(response.status_code)}: {service_error(response)}")
            page = response.json()
            found += [job["name"] for job in page.get("value") or [] if matches(job)]
            url, params = page.get("nextLink"), None  # nextLink carries its own query
        return found

    def ended(self, run_ids: list[str]) -> set[str]:
        """Which of these jobs have ended (a backfill's pace): one GET each, MLClient.jobs.get's route."""
        found = set()
        for name in run_ids:
            what = f"read job {name}"
            response = self._get(jobs_url(self.arm_url, self.workspace, name), {"api-version": JOBS_API_VERSION}, what)
            if response.status_code == 404:  # a job the workspace does not have is not running either
                found.add(name)
            elif response.status_code >= 400:
                raise SubmitError(f"{what}: {self._cause(response.status_code)}: {service_error(response)}")
            elif ((response.json().get("properties") or {}).get("status")) in ENDED_STATUSES:
                found.add(name)
        return found

    # -- HTTP -------------------------------------------------------------------------------------

    def _get(self, url: str, params: dict[str, str] | None, what: str) -> requests.Response:
        return self.service.send("GET", url, scope=ARM_SCOPE, what=what, params=params)

    def _cause(self, status: int) -> str:
        where = self.workspace.describe()
        causes = {
            400: "HTTP 400: the invocation was rejected; check that the endpoint's default deployment is the "
                 "sheetdrop pipeline component (`sheetdrop publish --v2`), whose inputs are "
                 f"{', '.join(contract.ARGUMENTS[:1] + contract.ARGUMENTS[2:])} and "
                 f"{contract.OUTPUT_PATH_PARAMETER} (strings) and output {contract.OUTPUT_NAME}",
            401: f"HTTP 401: the token was not accepted by {where}: wrong tenant or audience, or expired",
            403: f"HTTP 403: missing role: the Function's identity may not invoke the endpoint or read jobs in "
                 f"{where}; grant it 'AzureML Data Scientist' on the workspace (see docs/azureml-v2.md)",
            404: f"HTTP 404: no such batch endpoint or deployment ({self.endpoint_url}"
                 f"{', deployment ' + self.deployment if self.deployment else ''}); run `sheetdrop publish --v2` "
                 "and set AZUREML_BATCH_ENDPOINT_URL to the URL it prints",
        }
        return causes.get(status, f"HTTP {status}")


@dataclass
class AzureMLV2BatchBackend(AzureMLV2Backend):
    """The v2 backend with batches: many versions in one job of the batch deployment. ``create`` makes this one
    unless AZUREML_BATCH_JOB_DEPLOYMENT is ``off`` (then a batch's versions are submitted one by one)."""

    #: The deployment a batch of versions is invoked on (pipeline/v2/batch_deployment.yml).
    batch_deployment: str = "extract-batch"

    def submit_batch(self, batch: BatchRequest) -> SubmitResult:
        """One job of the batch deployment for every version of the batch (docs/azureml-v2.md, "Batch jobs")."""
        name = batch_job_name(batch.batch_id)
        manifest = batch.versions()
        return self._invoke(
            batch_invocation_body(batch, name, self.service.new_id(), self.output_datastore), name,
            self.batch_deployment, f"a batch of {len(batch.requests)} versions",
            lambda: next(iter(self._find(name, f"find the job of batch {batch.batch_id}",
                                         lambda job: manifest_of(job) == manifest)), None))
