"""`sheetdrop smoke` for the v1 backend (SHEETDROP_BACKEND=azureml): one pipeline run of the published extract
pipeline, its step run, the tabular datasets it registered, and the v1 items of docs/azureml.md's "What only a real
workspace confirms".

Over REST, with the signed-in identity and the token azureml-core asks for (ARM's audience,
``sheetdrop.submit.azureml.TOKEN_SCOPE``), on the workspace's API host (the PipelineEndpoint URL's):

* run history (:mod:`sheetdrop_local.smoke.runhistory`): the pipeline run (its tags, times, status), its one step
  run, the step's details (``runDefinition.dataReferences.extracted``) and log;
* ``GET {api}/dataset/v1.0/{ws}/datasets/query/name={name}?versionId={v}&includeLatestDefinition=true``: a
  version as ``DatasetDto`` (azureml-core ``_restclient/operations/dataset_operations.py``,
  ``get_dataset_by_name``, called by ``Dataset.get_by_name``;
  ``latest.dataflow`` holds the datastore path, ``latest.createdTime`` when it was registered);
* ``GET {api}/datastore/v1.0/{ws}/datastores/{name}``: ``DataStoreDto.azureStorageSection`` (``accountName``,
  ``containerName``; azureml-core ``data_stores_operations.py``, ``get``, called by ``Datastore.get``);
* ``DELETE {api}/dataset/v1.0/{ws}/datasets/{name}`` with ``--clean``: every version of a smoke dataset
  (``unregister_dataset``, called by ``Dataset.unregister_all_versions``).

tests/aml/test_smoke_routes.py drives azureml-core's own objects against the same stand-in and compares.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sheetdrop.submit.azureml import SUBMISSION_TAG, TOKEN_SCOPE
from sheetdrop.submit.service import service_error
from sheetdrop_contract import contract
from sheetdrop_local.smoke import items
from sheetdrop_local.smoke.facts import Dataset, Item, Observed, SmokeFailure, parse_time
from sheetdrop_local.smoke.runhistory import RunHistory

if TYPE_CHECKING:
    from sheetdrop_local.smoke.facts import Context

NOUN = "pipeline run"
#: One workbook, one run.
ROUNDS: tuple[tuple[str, ...], ...] = (("a",),)
ITEMS = ("mount-layout", "output-path", "tags-kept", "job-identity", "per-run-overhead", "workbook-finds-run",
         "table-version")
#: A datastore path in a registered dataflow: …/datastores/<name>/paths/<path> (the form azureml-core writes).
DATAFLOW_PATH = re.compile(r"datastores/(?P<datastore>[^/\s'\"\\]+)/paths/(?P<path>[^\s'\"\\]+)")


def _definition(dataflow: str) -> str:
    """The rslex definition inside a registered dataflow (``meta.RsDataflow``, as azureml-core writes it)."""
    try:
        return str(json.loads(dataflow)["meta"]["RsDataflow"])
    except (ValueError, KeyError, TypeError):
        return dataflow


def open_checks(ctx: Context) -> V1Checks:
    aml = ctx.settings.backend_settings
    return V1Checks(ctx, RunHistory(aml.base_url, aml.the_workspace(), ctx.service, TOKEN_SCOPE))


@dataclass
class V1Checks:
    ctx: Context
    history: RunHistory

    def _url(self, service: str, tail: str) -> str:
        return f"{self.history.api_url}/{service}/{self.history.workspace.path()}/{tail}"

    def status(self, run_id: str) -> str:
        run = self.history.run(run_id)
        return (run or {}).get("status") or ""

    def observe(self, seen: Observed) -> None:
        run = self.history.run(seen.run_id) or {}
        seen.status = run.get("status") or ""
        seen.created, seen.started, seen.ended = (parse_time(run.get(k)) for k in
                                                  ("createdUtc", "startTimeUtc", "endTimeUtc"))
        seen.seen["tags"] = dict(run.get("tags") or {})
        steps = self.history.children(seen.run_id)
        if steps:
            step = steps[0]
            seen.step_run_id = step["runId"]
            details = self.history.details(seen.step_run_id)
            seen.step_started = parse_time(details.get("startTimeUtc") or step.get("startTimeUtc"))
            seen.step_ended = parse_time(details.get("endTimeUtc") or step.get("endTimeUtc"))
            seen.seen["data_reference"] = ((details.get("runDefinition") or {}).get("dataReferences") or {}).get(
                contract.OUTPUT_NAME)
            found = self.history.log(step, details)
            if found:
                seen.seen["log_name"], seen.log = found
        refs = [ref.strip() for ref in (seen.seen["tags"].get("datasets") or "").split(",") if ref.strip()]
        seen.datasets = [self._dataset(ref) for ref in refs]

    def _dataset(self, ref: str) -> Dataset:
        name, _, version = ref.rpartition(":")
        response = self.ctx.service.send(
            "GET", self._url("dataset/v1.0", f"datasets/query/name={quote(name, safe='')}"), scope=TOKEN_SCOPE,
            what=f"read dataset {ref}", params={"versionId": version, "includeLatestDefinition": "true"})
        if response.status_code >= 400:
            raise SmokeFailure(f"the run names dataset {ref}, but reading it answered HTTP {response.status_code}: "
                               f"{service_error(response)}")
        dto = response.json()
        latest = dto.get("latest") or {}
        # One `paths` entry per path registered: a table version lists one glob per segment (table-version).
        found = list(DATAFLOW_PATH.finditer(_definition(latest.get("dataflow") or "")))
        if not found:
            raise SmokeFailure(f"dataset {ref}: its definition names no datastore path")
        return Dataset(ref, found[0]["datastore"], found[0]["path"], parse_time(latest.get("createdTime")),
                       dict(dto.get("tags") or {}), [match["path"] for match in found])

    def container(self, datastore: str) -> tuple[str, str]:
        """The datastore's storage account and container."""
        response = self.ctx.service.send("GET", self._url("datastore/v1.0", f"datastores/{quote(datastore, safe='')}"),
                                         scope=TOKEN_SCOPE, what=f"read datastore {datastore}")
        if response.status_code >= 400:
            raise SmokeFailure(f"read datastore {datastore}: HTTP {response.status_code}: {service_error(response)}")
        section = response.json().get("azureStorageSection") or {}
        return section.get("accountName") or "", section.get("containerName") or ""

    def items(self, observed: list[Observed]) -> list[Item]:
        seen = observed[0]
        return [items.mount_layout(seen), self._output_path(seen), self._tags_kept(seen), items.job_identity(seen)]

    def _output_path(self, seen: Observed) -> Item:
        reference: dict[str, Any] | None = seen.seen.get("data_reference")
        expected = contract.output_relative_path(seen.step_run_id)
        wanted = self.ctx.settings.output_datastore
        problems = []
        if not reference:
            problems.append("the step run's runDefinition has no dataReferences.extracted")
        else:
            if reference.get("dataStoreName") != wanted:
                problems.append(f"dataStoreName is {reference.get('dataStoreName')!r}, not {wanted!r}")
            if str(reference.get("pathOnDataStore") or "").strip("/") != expected:
                problems.append(f"pathOnDataStore is {reference.get('pathOnDataStore')!r}, not {expected!r}")
        astray = [d.ref for d in seen.datasets if not d.path.startswith(expected + "/")]
        if astray:
            problems.append(f"{', '.join(astray)} registered outside {expected}/")
        if not seen.seen.get("read_back"):
            problems.append("no dataset was read back")
        evidence = (f"runDefinition.dataReferences.extracted = {json.dumps(reference, sort_keys=True)}; datasets at "
                    f"{', '.join(f'{d.datastore}:{d.path}' for d in seen.datasets)}; read back: "
                    f"{seen.seen.get('read_back')}")
        return Item("output-path", not problems, "; ".join(problems) + ("; " if problems else "") + evidence)

    @staticmethod
    def _tags_kept(seen: Observed) -> Item:
        tags = seen.seen.get("tags") or {}
        kept = {name: tags.get(name) for name in (contract.INVOCATION_TAG, SUBMISSION_TAG)}
        missing = [name for name, value in kept.items() if not value]
        source = {name: tags.get(name) for name in contract.SOURCE_TAGS}
        if missing:
            return Item("tags-kept", False, f"the pipeline run lacks the submission's {', '.join(missing)}; its tags "
                        f"are {json.dumps(tags, sort_keys=True)}")
        return Item("tags-kept", True, f"the pipeline run has the submission's tags {kept}, beside the step's {source}")

    def clean(self, observed: list[Observed]) -> list[str]:
        done = []
        for name in sorted({d.ref.rpartition(":")[0] for seen in observed for d in seen.datasets}):
            response = self.ctx.service.send("DELETE", self._url("dataset/v1.0", f"datasets/{quote(name, safe='')}"),
                                             scope=TOKEN_SCOPE, what=f"unregister dataset {name}")
            done.append(f"dataset {name}: every version unregistered" if response.status_code < 400 else
                        f"dataset {name}: not unregistered (HTTP {response.status_code}: {service_error(response)})")
        return done
