"""A batch run on AzureML v1, through azureml-core and azureml-pipeline-core's real objects: chunked runs of the
same published pipeline, whose ``manifest`` parameter names the versions (docs/azureml.md, "Batch runs").

What the published module takes (its REST form, from the SDK's dry-run service caller), what a batch submission
sends (read back with the SDK's own models), that hostile names reach the step intact through bash, that a lost
answer makes no second run, that run history finds the batch run by any of its versions, and what the step's v1
context tags and logs through ``Run.get_context()`` (the run-history stand-in on loopback)."""

from __future__ import annotations

import json
from typing import Any

from azureml._restclient._odata.runs import get_filter_run_tag_equals
from msrest import Deserializer, Serializer

from loopback import LoopbackService
from sheetdrop.submit import BatchRequest, SubmitRequest
from sheetdrop.submit.azureml import AzureMLBackend
from sheetdrop_contract import batch, contract
from tests.aml.run_history import RunHistory
from tests.aml.test_azureml_context import history, open_context  # noqa: F401 (fixtures)
from tests.aml.test_pipeline_structure import HOSTILE, argv_through_bash, dry_run  # noqa: F401 (fixtures)
from tests.aml.test_submit_contract import (  # noqa: F401 (fixtures)
    RUN_ID,
    RUNS_QUERY_PART,
    SDK_MODELS,
    SUBMIT_PATH_PART,
    Waits,
    accepted,
    backend,
    sdk_submit_path,
)


def request_for(name: str, etag: str = '"0x8DC1"', dataset: str = "sales") -> SubmitRequest:
    return SubmitRequest(
        experiment_name="sheetdrop-extract", datastore_name="sheetdrop_input", relative_path=name,
        dataset_name=dataset, description=f"Extract input/{name}", source_container="input", source_blob=name,
        source_etag=etag, tags=contract.source_tags("input", name, etag),
        read_options=json.dumps({"sheets": {"include": [name]}}), input_account="https://stsheetdrop.blob.core.windows.net")


BATCH = BatchRequest("batch-7", tuple(request_for(name) for name in HOSTILE[:4]))


def test_a_batch_is_one_submission_of_the_published_pipeline_with_its_manifest(
        backend: tuple[AzureMLBackend, Waits], loopback: LoopbackService) -> None:  # noqa: F811
    backend_, _ = backend
    sdk_path = sdk_submit_path(loopback)
    loopback.script(SUBMIT_PATH_PART, accepted())

    result = backend_.submit_batch(BATCH)

    (ours,) = loopback.to(SUBMIT_PATH_PART)
    assert ours.path == sdk_path and result.run_id == RUN_ID
    body = ours.json()
    info = Deserializer(SDK_MODELS)("PipelineSubmissionInfo", body)
    assert Serializer(SDK_MODELS).body(info, "PipelineSubmissionInfo") == body  # only keys the model knows
    assert info.experiment_name == "sheetdrop-extract" and info.run_source == "SDK"
    assignments = dict(info.parameter_assignments)
    manifest = batch.parse_manifest(contract.decode_argument(assignments.pop(contract.MANIFEST_PARAMETER)))
    assert manifest == BATCH.versions()
    # The single version's parameters at their placeholders: the step reads the manifest.
    assert assignments == {
        contract.INPUT_ACCOUNT_PARAMETER: contract.encode_argument("https://stsheetdrop.blob.core.windows.net"),
        contract.DATASET_NAME_PARAMETER: "placeholder", contract.SOURCE_PARAMETER: "%7B%7D",
        contract.READ_OPTIONS_PARAMETER: "%7B%7D"}
    tags = dict(info.tags)
    assert tags.pop(batch.BATCH_TAG) == "batch-7" and tags.pop("sheetdrop_submission_id")
    assert tags == {f"{batch.VERSION_TAG_PREFIX}{v.key()}": "1" for v in manifest}


def test_names_in_a_batch_reach_the_step_intact_through_bash(dry_run: dict[str, Any]) -> None:  # noqa: F811
    every = BatchRequest("b", tuple(request_for(name) for name in HOSTILE))
    argv = argv_through_bash(dry_run, {**every.step_parameters()})
    args = contract.parse_step_arguments(argv)
    versions = batch.parse_manifest(args.manifest)
    assert [v.blob for v in versions] == HOSTILE
    assert [json.loads(v.read_options) for v in versions] == [{"sheets": {"include": [n]}} for n in HOSTILE]
    assert contract.parse_source_version(args.source_version) == {}  # the placeholder: not a single version's run


def test_a_lost_answer_to_a_batch_is_found_by_its_tag_and_not_sent_again(
        backend: tuple[AzureMLBackend, Waits], loopback: LoopbackService) -> None:  # noqa: F811
    backend_, _ = backend
    loopback.script(SUBMIT_PATH_PART, "drop")  # the service started the run; the answer never came
    loopback.script(RUNS_QUERY_PART, (200, {}, {"value": [
        {"runId": RUN_ID, "parentRunId": None, "tags": {batch.BATCH_TAG: "batch-7"}}], "continuationToken": None}))

    assert backend_.submit_batch(BATCH).run_id == RUN_ID
    assert len(loopback.to(SUBMIT_PATH_PART)) == 1
    (query,) = loopback.to(RUNS_QUERY_PART)
    assert query.json()["filter"] == get_filter_run_tag_equals({batch.BATCH_TAG: "batch-7"})


def test_run_history_finds_the_batch_run_of_each_version(
        backend: tuple[AzureMLBackend, Waits], loopback: LoopbackService) -> None:  # noqa: F811
    backend_, _ = backend
    version = BATCH.versions()[2]
    key_tag = {f"{batch.VERSION_TAG_PREFIX}{version.key()}": "1"}
    source = contract.source_tags(version.container, version.blob, version.etag)
    loopback.script(RUNS_QUERY_PART, (200, {}, {"value": [
        {"runId": "batch-run", "parentRunId": None, "tags": key_tag},
        {"runId": "its-step", "parentRunId": "batch-run", "tags": key_tag},
        {"runId": "own-run", "parentRunId": None, "tags": source},
        {"runId": "other-batch", "parentRunId": None, "tags": {f"{batch.VERSION_TAG_PREFIX}{'0' * 32}": "1"}}]}))

    assert backend_.find_runs(version.container, version.blob, version.etag) == ["batch-run", "own-run"]
    (query,) = loopback.to(RUNS_QUERY_PART)
    # One query: its own runs' tags or its key, each as azureml-core's run-history client writes a tag filter (the
    # etag's quotes cannot be written in that grammar: checked on the answer), joined by `or` as its filters do.
    own = get_filter_run_tag_equals({k: v for k, v in source.items() if k != "source_etag"})
    assert query.json()["filter"] == f"({own} or {get_filter_run_tag_equals(key_tag)})"


def test_the_v1_context_tags_both_runs_with_each_version_and_logs_each_outcome(history: RunHistory) -> None:  # noqa: F811
    context = open_context(history)
    versions = BATCH.versions()[:2]
    context.start_batch(versions)
    context.record_outcome(batch.VersionOutcome(0, versions[0], "converted", datasets=["sales_orders:3"]))
    context.record_outcome(batch.VersionOutcome(1, versions[1], "rejected", code="corrupt", reason="bad zip"))
    context.complete()

    keys = {f"{batch.VERSION_TAG_PREFIX}{v.key()}": "1" for v in versions}
    for run in (history.pipeline_run_id, history.step_run_id):
        assert keys.items() <= history.runs[run]["tags"].items()
    sent = [value for post in history.sent("POST", f"/runs/{history.step_run_id}/batch")
            for value in post.json()["values"]]
    rows = [v["value"][0]["data"] for v in sent if v["name"] == "versions"]
    assert rows == [
        {"position": 0, "blob": versions[0].blob, "etag": versions[0].etag, "outcome": "converted", "code": "",
         "reason": "", "datasets": "sales_orders:3"},
        {"position": 1, "blob": versions[1].blob, "etag": versions[1].etag, "outcome": "rejected", "code": "corrupt",
         "reason": "bad zip", "datasets": ""}]
