"""`sheetdrop smoke` for the v2 backend (SHEETDROP_BACKEND=azureml-v2): batch jobs of the extract pipeline
component, their step jobs, the data assets they registered, and the v2 items of docs/azureml-v2.md's "What only a
real workspace confirms". Two workbooks go into the smoke folder at once (data-version-race), then the first one
again, the same bytes as a new blob version (never-reused): three jobs.

Over REST, with the signed-in identity and MLClient's ARM scope (``sheetdrop.submit.azureml_v2.ARM_SCOPE``), each
route what azure-ai-ml 1.34 sends (tests/aml2/test_smoke_routes.py drives the real ``MLClient`` against the same
stand-in and compares):

* ``GET {arm}/{ws}/jobs/{name}`` and ``GET {arm}/{ws}/jobs?listViewType=ActiveOnly`` (``jobs.get``, ``jobs.list``;
  api-version :data:`~sheetdrop.submit.azureml_v2.JOBS_API_VERSION`);
* ``GET {arm}/{ws}`` (``workspaces.get``): its ``discoveryUrl``, whose ``api`` key is the run-history host
  (``_utils/utils.py``, ``_get_workspace_base_url``; ``jobs._runs_operations`` is built on it);
* run history (:mod:`sheetdrop_local.smoke.runhistory`) for times, the step job and its log;
* ``GET {arm}/{ws}/data/{name}/versions/{version}`` (``data.get``): ``dataUri``, ``systemData.createdAt`` and, for
  an mltable asset (a table version), ``referencedUris``;
* ``GET {arm}/{ws}/datastores/{name}`` (``datastores.get``): ``accountName``, ``containerName``;
* with ``--clean``, ``GET`` then ``PUT {arm}/{ws}/data/{name}`` with ``isArchived: true`` (``data.archive(name)``,
  ``_archive_or_restore`` on the container).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from sheetdrop.submit.azureml_v2 import (
    ARM_SCOPE,
    JOBS_API_VERSION,
    SOURCE_KEY_PROPERTY,
    SUBMISSION_TAG,
    is_this_version,
    job_name,
)
from sheetdrop.submit.service import service_error
from sheetdrop_contract import contract
from sheetdrop_local.smoke import items
from sheetdrop_local.smoke.facts import Dataset, Item, Observed, SmokeFailure, parse_time
from sheetdrop_local.smoke.runhistory import RunHistory

if TYPE_CHECKING:
    from sheetdrop_local.smoke.facts import Context

NOUN = "batch job"
#: Two workbooks at once into one folder (data-version-race), then the first again (never-reused).
ROUNDS: tuple[tuple[str, ...], ...] = (("a", "b"), ("a",))
ITEMS = ("mount-layout", "output-path", "tags-kept", "job-name-kept", "jobs-list-inputs", "job-identity",
         "never-reused", "data-version-race", "per-run-overhead", "workbook-finds-run", "table-version")
#: azure-ai-ml 1.34's api-versions: data assets (its 2023-04-01-preview client), datastores and workspaces.
DATA_API_VERSION = "2023-04-01-preview"
DATASTORES_API_VERSION = "2024-10-01-preview"
WORKSPACE_API_VERSION = "2024-10-01-preview"
DATA_URI = re.compile(r"azureml://(?:.*/)?datastores/(?P<datastore>[^/]+)/paths/(?P<path>.+)")


def open_checks(ctx: Context) -> V2Checks:
    aml = ctx.settings.backend_settings
    checks = V2Checks(ctx, aml.arm_url.rstrip("/"), aml.the_workspace().path())
    checks.history = RunHistory(checks.discover(), aml.the_workspace(), ctx.service, ARM_SCOPE)
    return checks


@dataclass
class V2Checks:
    ctx: Context
    arm: str
    workspace_path: str
    history: RunHistory = field(init=False)

    def _arm(self, tail: str, what: str, api_version: str, method: str = "GET", body: Any = None,
             params: dict[str, str] | None = None) -> requests.Response:
        response = self.ctx.service.send(
            method, f"{self.arm}/{self.workspace_path}{tail}", scope=ARM_SCOPE, what=what,
            params={"api-version": api_version, **(params or {})},
            data=None if body is None else json.dumps(body).encode("utf-8"),
            headers=None if body is None else {"Content-Type": "application/json"})
        if response.status_code >= 400 and response.status_code != 404:
            raise SmokeFailure(f"{what}: HTTP {response.status_code}: {service_error(response)}")
        return response

    def discover(self) -> str:
        workspace = self._arm("", "read the workspace", WORKSPACE_API_VERSION).json()
        url = (workspace.get("properties") or {}).get("discoveryUrl")
        if not url:
            raise SmokeFailure("the workspace names no discoveryUrl (where its run history is)")
        return requests.get(url, timeout=60).json()["api"]

    def job(self, name: str) -> dict[str, Any]:
        response = self._arm(f"/jobs/{quote(name, safe='')}", f"read job {name}", JOBS_API_VERSION)
        return {} if response.status_code == 404 else response.json()

    def status(self, run_id: str) -> str:
        return (self.job(run_id).get("properties") or {}).get("status") or ""

    def observe(self, seen: Observed) -> None:
        job = self.job(seen.run_id)
        properties = job.get("properties") or {}
        seen.status = properties.get("status") or ""
        seen.seen["job"] = job
        run = self.history.run(seen.run_id) or {}
        seen.seen["tags"] = dict(run.get("tags") or {})
        seen.created, seen.started, seen.ended = (parse_time(run.get(k)) for k in
                                                  ("createdUtc", "startTimeUtc", "endTimeUtc"))
        step = self._step(seen.run_id)
        if step:
            seen.step_run_id = step["runId"]
            seen.seen["step"] = step
            details = self.history.details(seen.step_run_id)
            seen.step_started = parse_time(details.get("startTimeUtc") or step.get("startTimeUtc"))
            seen.step_ended = parse_time(details.get("endTimeUtc") or step.get("endTimeUtc"))
            found = self.history.log(step, details)
            if found:
                seen.seen["log_name"], seen.log = found
        refs = [r.strip() for r in (seen.seen["tags"].get("datasets") or "").split(",") if r.strip()] or \
            [line.removeprefix("dataset: ").strip() for line in seen.log.splitlines() if line.startswith("dataset: ")]
        seen.datasets = [self._dataset(ref) for ref in refs]

    def _step(self, job: str) -> dict[str, Any] | None:
        """The step job: the leaf under the batch job (a pipeline job's child, or its grandchild)."""
        for child in self.history.children(job):
            leaves = self.history.children(child["runId"])
            return leaves[0] if leaves else child
        return None

    def _dataset(self, ref: str) -> Dataset:
        name, _, version = ref.rpartition(":")
        response = self._arm(f"/data/{quote(name, safe='')}/versions/{quote(version, safe='')}",
                             f"read data asset {ref}", DATA_API_VERSION)
        if response.status_code == 404:
            raise SmokeFailure(f"the job names data asset {ref}, but the workspace has no such version")
        asset = response.json()
        properties = asset.get("properties") or {}
        found = DATA_URI.fullmatch(properties.get("dataUri") or "")
        if not found:
            raise SmokeFailure(f"data asset {ref}: its dataUri names no datastore path")
        # An mltable asset (a table version) also names what its MLTable file lists: ``referencedUris``, one glob per
        # segment (MLTableData, azure-ai-ml _restclient/v2023_04_01_preview/models/_models_py3.py), which
        # azure-ai-ml fills from the MLTable file it reads on registering (table-version).
        listed = [DATA_URI.fullmatch(str(uri)) for uri in properties.get("referencedUris") or []]
        paths = [match["path"] if match else "" for match in listed] or [found["path"]]
        return Dataset(ref, found["datastore"], found["path"],
                       parse_time((asset.get("systemData") or {}).get("createdAt")),
                       dict(properties.get("tags") or {}), paths)

    def container(self, datastore: str) -> tuple[str, str]:
        response = self._arm(f"/datastores/{quote(datastore, safe='')}", f"read datastore {datastore}",
                             DATASTORES_API_VERSION)
        if response.status_code == 404:
            raise SmokeFailure(f"the workspace has no datastore {datastore}")
        properties = response.json().get("properties") or {}
        return properties.get("accountName") or "", properties.get("containerName") or ""

    # -- the items ----------------------------------------------------------------------------------------------

    def items(self, observed: list[Observed]) -> list[Item]:
        first = observed[0]
        return [items.mount_layout(first), self._output_path(first), self._tags_kept(first),
                self._job_name_kept(first), self._jobs_list_inputs(first), items.job_identity(first),
                self._never_reused(observed), self._data_version_race(observed)]

    def _output_path(self, seen: Observed) -> Item:
        outputs = ((seen.seen.get("job") or {}).get("properties") or {}).get("outputs") or {}
        uri = (outputs.get(contract.OUTPUT_NAME) or {}).get("uri") or ""
        expected = contract.output_relative_path(job_name(self.ctx.settings.input_container, seen.blob, seen.etag))
        problems = [f"{d.ref} is at {d.datastore}:{d.path}, not under {expected}/" for d in seen.datasets
                    if d.datastore != self.ctx.settings.output_datastore or not d.path.startswith(expected + "/")]
        if not seen.datasets:
            problems.append("no data asset was registered")
        if not seen.seen.get("read_back"):
            problems.append("no data asset was read back")
        evidence = (f"the job's outputs.extracted is {uri or '(not shown)'}; assets at "
                    f"{', '.join(f'{d.datastore}:{d.path}' for d in seen.datasets)}; read back: "
                    f"{seen.seen.get('read_back')}")
        return Item("output-path", not problems, "; ".join(problems) + ("; " if problems else "") + evidence)

    @staticmethod
    def _tags_kept(seen: Observed) -> Item:
        properties = (seen.seen.get("job") or {}).get("properties") or {}
        job_tags, job_properties = properties.get("tags") or {}, properties.get("properties") or {}
        pipeline_tags = seen.seen.get("tags") or {}
        step = seen.seen.get("step") or {}
        checks = {
            "the batch job's submission tags": all(job_tags.get(k) for k in (contract.INVOCATION_TAG, SUBMISSION_TAG)),
            f"its {SOURCE_KEY_PROPERTY} property": bool(job_properties.get(SOURCE_KEY_PROPERTY)),
            "the pipeline job's source tags (set by the step through MLflow)": all(
                pipeline_tags.get(k) for k in contract.SOURCE_TAGS),
            "the step job's parent is the pipeline job": step.get("parentRunId") == seen.run_id,
        }
        evidence = (f"job tags {json.dumps(job_tags, sort_keys=True)}; job properties "
                    f"{json.dumps(job_properties, sort_keys=True)}; pipeline job tags "
                    f"{json.dumps(pipeline_tags, sort_keys=True)}; step parent {step.get('parentRunId')!r}")
        missing = [what for what, ok in checks.items() if not ok]
        return Item("tags-kept", not missing, (f"missing: {'; '.join(missing)}; " if missing else "") + evidence)

    def _job_name_kept(self, seen: Observed) -> Item:
        asked = job_name(self.ctx.settings.input_container, seen.blob, seen.etag)
        return Item("job-name-kept", seen.run_id == asked, f"asked for {asked}, the job is named {seen.run_id}")

    def _jobs_list_inputs(self, seen: Observed) -> Item:
        page = self._arm("/jobs", "list the workspace's jobs", JOBS_API_VERSION,
                         params={"listViewType": "ActiveOnly"}).json()
        jobs = page.get("value") or []
        names = [job.get("name") for job in jobs]
        if seen.run_id not in names:
            return Item("jobs-list-inputs", False, f"{seen.run_id} is not among the first page's {len(jobs)} jobs")
        job = jobs[names.index(seen.run_id)]
        value = (((job.get("properties") or {}).get("inputs") or {}).get(contract.SOURCE_PARAMETER) or {}).get("value")
        # Matched by its input alone: a name the service did not keep must not decide this.
        by_input = is_this_version(job, "", self.ctx.settings.input_container, seen.blob, seen.etag) and \
            contract.SOURCE_PARAMETER in ((job.get("properties") or {}).get("inputs") or {})
        return Item("jobs-list-inputs", by_input, f"{seen.run_id} is job {names.index(seen.run_id) + 1} of the first "
                    f"page ({len(jobs)}); its {contract.SOURCE_PARAMETER} input is {value!r}")

    @staticmethod
    def _never_reused(observed: list[Observed]) -> Item:
        first, again = observed[0], observed[-1]
        read = again.line("input: read ")
        ran = bool(read) and again.etag in read and again.step_run_id and again.step_run_id != first.step_run_id
        reuse = {k: v for k, v in ((again.seen.get("step") or {}).get("properties") or {}).items() if "reuse" in k}
        return Item("never-reused", bool(ran) and not reuse and bool(again.datasets),
                    f"the same workbook again as {again.etag}: step job {again.step_run_id or '?'} (first: "
                    f"{first.step_run_id or '?'}) read {read!r}, registered {', '.join(d.ref for d in again.datasets)}"
                    f"; reuse properties {reuse or 'none'}")

    @staticmethod
    def _data_version_race(observed: list[Observed]) -> Item:
        a, b = observed[0], observed[1]
        refs = [d.ref for d in (*a.datasets, *b.datasets)]
        overlap = None not in (a.step_started, a.step_ended, b.step_started, b.step_ended) and \
            max(a.step_started, b.step_started) < min(a.step_ended, b.step_ended)  # type: ignore[type-var]
        distinct = len(refs) == len(set(refs)) and len(a.datasets) == len(b.datasets) > 0
        evidence = (f"{a.blob} registered {', '.join(d.ref for d in a.datasets) or 'nothing'}, {b.blob} "
                    f"{', '.join(d.ref for d in b.datasets) or 'nothing'}; the two steps "
                    f"{'ran at the same time' if overlap else 'did not run at the same time'}")
        if not overlap:
            evidence += " (the race was not exercised: run the smoke test again when both nodes can start)"
        return Item("data-version-race", bool(overlap and distinct), evidence)

    def clean(self, observed: list[Observed]) -> list[str]:
        done = []
        for name in sorted({d.ref.rpartition(":")[0] for seen in observed for d in seen.datasets}):
            container = self._arm(f"/data/{quote(name, safe='')}", f"read data {name}", DATA_API_VERSION)
            if container.status_code != 200:
                done.append(f"data asset {name}: not archived (HTTP {container.status_code})")
                continue
            body = container.json()
            body.setdefault("properties", {})["isArchived"] = True
            self._arm(f"/data/{quote(name, safe='')}", f"archive data {name}", DATA_API_VERSION, "PUT", body)
            done.append(f"data asset {name}: archived")
        return done
