"""A stateful AzureML stand-in on loopback for the reliability tests (Function environment).

It answers the two routes the Function uses — PipelineEndpoint submit and the run-history
query — in the shapes azureml-pipeline-core's models define (checked by tests/aml), remembers
the runs it "started" with their tags and parameters, and serves managed-identity tokens the way
App Service does, so the backend runs with a real azure-identity credential.

No SDK path sends submission tags and no document promises the service keeps them, so it can be
told to drop them (``ignore_tags``); the tags then come only from the step, which sets them from
its ``source_version`` parameter when it starts (:meth:`start_step`, or at once with
``steps_start_at_once``).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from loopback import LoopbackService, Recorded, Reply
from sheetdrop_contract import contract

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-sheetdrop"
WORKSPACE = "mlw-sheetdrop"
ENDPOINT_ID = "0f7c1d2e-3a4b-4c5d-8e9f-a0b1c2d3e4f5"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.standin-token-value.signature"
IDENTITY_HEADER = "standin-identity-header"


@dataclass
class AzureMLStandIn:
    service: LoopbackService
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: Answers for the next submissions, in order (status, headers, body); then runs are accepted.
    submit_failures: list[Reply] = field(default_factory=list)
    always_fail_with: Reply | None = None
    #: Start this many runs but drop the connection instead of answering (the answer is lost).
    lose_answers: int = 0
    #: Keep none of the submission's tags (see the module docstring).
    ignore_tags: bool = False
    #: The step of each run starts (and tags its run) as soon as the run is created.
    steps_start_at_once: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.service.default = self.reply

    def env(self) -> dict[str, str]:
        return {
            "SHEETDROP_BACKEND": "azureml",
            "AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION,
            "AZUREML_RESOURCE_GROUP": RESOURCE_GROUP,
            "AZUREML_WORKSPACE": WORKSPACE,
            "AZUREML_PIPELINE_ENDPOINT_ID": ENDPOINT_ID,
            "AZUREML_API_URL": self.service.url,
            "AZUREML_SUBMIT_DEADLINE_SECONDS": "30",
            "IDENTITY_ENDPOINT": f"{self.service.url}/msi/token",
            "IDENTITY_HEADER": IDENTITY_HEADER,
        }

    @property
    def submissions(self) -> list[Recorded]:
        return self.service.to("/PipelineEndpointSubmit/Id/")

    def reply(self, recorded: Recorded) -> Reply:
        if recorded.path == "/msi/token":
            if recorded.headers.get("x-identity-header") != IDENTITY_HEADER:
                return 401, {}, {"error": "bad identity header"}
            return 200, {}, {"access_token": TOKEN, "expires_on": "4102444800",
                             "resource": recorded.query["resource"][0], "token_type": "Bearer"}
        if recorded.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {}, {"error": {"code": "Unauthorized", "message": "no or wrong token"}}
        if "/PipelineEndpointSubmit/Id/" in recorded.path:
            with self._lock:
                if self.always_fail_with is not None:
                    return self.always_fail_with
                if self.submit_failures:
                    return self.submit_failures.pop(0)
                run_id = str(uuid.uuid4())
                body = recorded.json()
                self.runs.append({"runId": run_id, "parentRunId": None, "status": "NotStarted",
                                  "tags": {} if self.ignore_tags else dict(body.get("tags", {})),
                                  "parameters": body.get("ParameterAssignments", {})})
                if self.steps_start_at_once:
                    self._start_step(self.runs[-1])
                if self.lose_answers:
                    self.lose_answers -= 1
                    return "drop"
            return 200, {}, {"Id": run_id, "Status": {"StatusCode": "NotStarted"}}
        if "/history/v1.0/" in recorded.path and "/runs/" in recorded.path and recorded.method == "GET":
            run_id = recorded.path.rsplit("/", 1)[1]
            with self._lock:
                found = [run for run in self.runs if run["runId"] == run_id]
            if not found:
                return 404, {}, {"error": {"code": "NotFound", "message": f"run {run_id}"}}
            return 200, {}, {k: v for k, v in found[0].items() if k != "parameters"}
        if recorded.path.endswith("/runs:query"):
            with self._lock:
                value = [{k: v for k, v in run.items() if k != "parameters"} for run in self.runs]
                return 200, {}, {"value": value, "continuationToken": None}
        return 404, {}, {"error": {"code": "NotFound", "message": recorded.path}}

    def finish(self, run_id: str, status: str = "Completed") -> None:
        """The run reaches a last state, as run history then reports it (RunDto.status)."""
        with self._lock:
            next(run for run in self.runs if run["runId"] == run_id)["status"] = status

    def start_step(self, run_id: str) -> None:
        with self._lock:
            self._start_step(next(run for run in self.runs if run["runId"] == run_id))

    @staticmethod
    def _start_step(run: dict[str, Any]) -> None:
        # What sheetdrop_step/contexts/azureml.py's start() does with the parameter (tested in tests/aml).
        run["tags"].update(contract.parse_source_version(contract.decode_argument(
            run["parameters"][contract.SOURCE_PARAMETER])))
