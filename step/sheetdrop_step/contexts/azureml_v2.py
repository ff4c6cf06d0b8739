"""The step's context inside an AzureML v2 job: MLflow for tags and metrics, azure-ai-ml for the data assets.

Chosen only when the component says so (``--setting SHEETDROP_JOB_API=v2`` on its command line) and AzureML
started the process (``AZUREML_RUN_ID``); azure-ai-ml and MLflow are imported only then. It never asks the
service where the output goes: the invocation chose that and the step got it as ``--output_path``. Every fact
used here, and what only a real workspace confirms, is in docs/azureml-v2.md.

One data asset version per sheet, of type ``uri_file`` on the parquet file itself (not ``mltable``):
the sheet is one file, so the asset is exactly that sheet's version; registering it reads nothing
(an ``mltable`` asset needs an MLTable file on the datastore first, and the output reaches the
datastore only as files close or when the step ends); and it points at the same datastore path the
v1 step registers, so both backends' versions load the same way.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from sheetdrop_contract.batch import PinnedVersion, VersionOutcome
from sheetdrop_contract.contract import (
    JOB_API_ENV,
    SUPERSEDED_TAG,
    OutputPathError,
    Registration,
    datastore_uri,
    fed_by,
    named_like_a_sheet_of,
)
from sheetdrop_contract.table import TABLE_VERSION_TAG
from sheetdrop_step import source

#: MLflow's limits: tag values are cut rather than failing a run over a long column-type map.
MAX_TAG_VALUE = 5000
#: The tag MLflow keeps the parent (pipeline) run's id in, for a step run.
PARENT_RUN_TAG = "mlflow.parentRunId"


def metric_key(name: str) -> str:
    """MLflow accepts letters, digits, ``_ - . /`` and spaces in keys; v1's ``<file>:<what>`` becomes
    ``<file>/<what>``."""
    return name.replace(":", "/")


class AzureMLV2Context:
    #: A storage blip must not lose the version: nothing resubmits a run that failed reading its input.
    storage_retries = 6

    def __init__(self, ml_client: Any, mlflow_client: Any, step_run_id: str, credential: Any = None) -> None:
        self.ml_client = ml_client
        self.credential = credential
        self.mlflow = mlflow_client
        self.step_run_id = step_run_id
        tags = mlflow_client.get_run(step_run_id).data.tags
        # The pipeline job the batch endpoint made is what the Function logged and the claim holds; a
        # command job started on its own has no parent.
        self.parent_run_id: str | None = tags.get(PARENT_RUN_TAG)
        self.run_id: str = self.parent_run_id or step_run_id
        self._registered: list[str] = []

    def start(self, source: dict[str, str]) -> None:
        if not source:
            return
        # As in v1: the Function's recovery may search by these whether or not the service kept the
        # invocation's tags; on the pipeline job (what people open) and on the step's own job.
        for run in {self.run_id, self.step_run_id}:
            for key, value in source.items():
                self.mlflow.set_tag(run, key, value)

    def start_batch(self, versions: list[PinnedVersion]) -> None:
        pass  # the batch job is found by its manifest input, which the service must keep to run it

    def record_outcome(self, outcome: VersionOutcome) -> None:
        # A tag per version on the step's job (the parallel step of a batch job; its mini-batches run in several
        # processes, so a counter would race): studio lists them with the job's tags.
        summary = outcome.outcome + (f" {outcome.code}: {outcome.reason}" if outcome.code else "") + \
            (f" {', '.join(outcome.datasets)}" if outcome.datasets else "")
        self.mlflow.set_tag(self.step_run_id, f"version/{outcome.position}", summary[:MAX_TAG_VALUE])

    def storage_credential(self) -> Any:
        return self.credential

    def output_path(self, name: str, datastore: str) -> str:
        # A pipeline child job read back through azure-ai-ml has no outputs (docs/azureml-v2.md, "Where the step
        # writes"), and the mount path says nothing about the datastore: only the invocation knows.
        raise OutputPathError(f"no --output_path: a v2 job's invocation chooses where output {name!r} goes on "
                              f"{datastore} and passes it to the step (pipeline/v2/component.yml)")

    def previous_tags(self, name: str) -> dict[str, str] | None:
        from azure.ai.ml.exceptions import MlException
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(self.ml_client.data.get(name, label="latest").tags or {})
        except (ResourceNotFoundError, MlException):
            # No version yet: azure-ai-ml turns the 404 into a ValidationException, raised as an MlException
            # (_utils/_asset_utils.py: _get_latest_version_from_container; _exception_helper.py). Any other answer
            # (a 403: a missing role) is an HttpResponseError and fails the run, naming it.
            return None

    def previous_names(self, base: str) -> list[str]:
        try:
            names = sorted({data.name for data in self.ml_client.data.list()})
        except Exception:  # only feeds a warning; never fail a run over it
            return []
        # The name first: asking for the tags is a request per dataset.
        candidates = [n for n in names if named_like_a_sheet_of(n, base)]
        return [n for n in candidates if fed_by(n, self.previous_tags(n) or {}, base)]

    def log_metric(self, name: str, value: float | int | str) -> None:
        # MLflow metrics are numbers; the converter's text results (column types) become tags, which
        # studio shows on the job next to the metrics.
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.mlflow.log_metric(self.step_run_id, metric_key(name), float(value))
        else:
            self.mlflow.set_tag(self.step_run_id, metric_key(name), str(value)[:MAX_TAG_VALUE])

    def per_file_versions(self, base: str) -> list[dict[str, Any]]:
        found = []
        for name in self.previous_names(base):
            for data in self.ml_client.data.list(name=name):
                tags = dict(data.tags or {})
                match = re.fullmatch(r"azureml://datastores/[^/]+/paths/(.+)", str(data.path))
                if TABLE_VERSION_TAG not in tags and match:
                    found.append({"name": name, "relative_path": match[1], "tags": tags,
                                  "version": int(data.version)})
        return sorted(found, key=lambda item: (item["name"], item["version"]))

    def output_container(self, datastore: str) -> Any:
        from azure.storage.blob import ContainerClient

        # The datastore's account and container, written as the compute's identity (docs/azureml-v2.md, "A folder
        # as one table": Storage Blob Data Contributor on the workspace storage).
        found = self.ml_client.datastores.get(datastore)
        return ContainerClient(f"{found.protocol}://{found.account_name}.blob.{found.endpoint}", found.container_name,
                               credential=self.credential)

    def register(self, registration: Registration) -> str:
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Data

        # No version: azure-ai-ml takes the next one (Data._auto_increment_version), as v1's
        # create_new_version did. A table version is an mltable asset over its version's folder, whose MLTable file
        # lists the files (written beside the manifest: sheetdrop_step.tables.ManifestStore.create).
        table = bool(registration.files)
        path = posixpath.dirname(registration.relative_path) + "/" if table else registration.relative_path
        data = Data(name=registration.name, type=AssetTypes.MLTABLE if table else AssetTypes.URI_FILE,
                    description=registration.description, path=datastore_uri(registration.datastore, path),
                    tags=registration.tags)
        registered = self.ml_client.data.create_or_update(data)
        reference = f"{registered.name}:{registered.version}"
        self._registered.append(reference)
        return reference

    def complete(self) -> None:
        if self._registered:
            self.mlflow.set_tag(self.run_id, "datasets", ", ".join(self._registered)[:MAX_TAG_VALUE])

    def superseded(self, newer_etag: str) -> None:
        # AzureML has no such status: the job completes, and its tag says why it registered nothing.
        for run in {self.run_id, self.step_run_id}:
            self.mlflow.set_tag(run, SUPERSEDED_TAG, newer_etag)


def open_context(env: Mapping[str, str]) -> AzureMLV2Context | None:
    return azureml_v2_context() if env.get("AZUREML_RUN_ID") and env.get(JOB_API_ENV) == "v2" else None


def azureml_v2_context() -> AzureMLV2Context:
    from azure.ai.ml import MLClient
    from mlflow.tracking import MlflowClient

    # The compute's managed identity registers the data assets and reads the input (docs/azureml-v2.md, "The
    # step's identity"); the workspace is the one the job runs in, from the variables AzureML sets in every job
    # (azure-ai-ml's own Spark credential reads the same three).
    credential = source.compute_identity()
    client = MLClient(credential, os.environ["AZUREML_ARM_SUBSCRIPTION"], os.environ["AZUREML_ARM_RESOURCEGROUP"],
                      os.environ["AZUREML_ARM_WORKSPACE_NAME"])
    # MLflow is pointed at the workspace by AzureML (MLFLOW_TRACKING_URI, MLFLOW_RUN_ID).
    return AzureMLV2Context(client, MlflowClient(), os.environ.get("MLFLOW_RUN_ID") or os.environ["AZUREML_RUN_ID"],
                            credential)
