"""Publish the extract pipeline behind a PipelineEndpoint: ``python -m pipeline.publish``.

Runs in the AzureML environment (.venv-aml). Connects to the workspace, gets or
creates the compute cluster, builds the pipeline from :mod:`pipeline.build`,
validates and publishes it, and puts it behind the PipelineEndpoint: created the
first time, given a new default version afterwards, so the Function's endpoint id
never changes. Prints the endpoint id and its REST URL for the Function's settings.

Settings come from the command line, else the environment (the same names as the
Function's app settings, see docs/azureml.md), else the workspace's config.json.

Authentication and the workspace's location: :mod:`pipeline.workspace`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azureml.core import Datastore, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.pipeline.core import PipelineEndpoint

from pipeline import build, snapshot
from pipeline.workspace import SetupError, add_connection_arguments, connect

DEFAULT_ENDPOINT_NAME = "sheetdrop-extract"
DEFAULT_COMPUTE_NAME = "sheetdrop-cpu"
DEFAULT_VM_SIZE = "STANDARD_DS3_V2"
#: PipelineEndpoint.list answers at most this many; a workspace holds far fewer endpoints.
MAX_ENDPOINTS = 1000


@dataclass(frozen=True)
class Published:
    endpoint_id: str
    endpoint_url: str
    pipeline_id: str
    created: bool  # False: an existing endpoint got a new default version


#: --auth kinds, the default first.
def get_or_create_compute(workspace: Workspace, name: str, vm_size: str, max_nodes: int) -> ComputeTarget:
    try:
        compute = ComputeTarget(workspace=workspace, name=name)
    except ComputeTargetException:
        pass
    else:
        if compute.type != AmlCompute._compute_type:
            raise SystemExit(f"error: compute target {name!r} is a {compute.type}, not an AmlCompute cluster")
        print(f"compute: using {name} ({compute.type})")
        return compute
    print(f"compute: creating AmlCompute {name} ({vm_size}, 0..{max_nodes} nodes)")
    config = AmlCompute.provisioning_configuration(
        vm_size=vm_size,
        # Scale to zero between workbooks: nothing is billed while no blob arrives.
        min_nodes=0,
        max_nodes=max_nodes,
        idle_seconds_before_scaledown=900,
        # The cluster's own identity reads the input storage (identity-based datastore, no keys).
        identity_type="SystemAssigned",
    )
    compute = ComputeTarget.create(workspace, name, config)
    compute.wait_for_completion(show_output=True)
    return compute


def find_endpoint(workspace: Any, name: str, _workflow_provider: Any = None) -> PipelineEndpoint | None:
    # Listed rather than PipelineEndpoint.get(name=...): a missing name surfaces there as a generic
    # service error that cannot be told apart from a failure to ask.
    for endpoint in PipelineEndpoint.list(workspace, active_only=False, max_results=MAX_ENDPOINTS,
                                          _workflow_provider=_workflow_provider):
        if endpoint.name == name:
            return endpoint
    return None


def publish_behind_endpoint(
    workspace: Any,
    pipeline: Any,
    *,
    endpoint_name: str = DEFAULT_ENDPOINT_NAME,
    version: str | None = None,
    _workflow_provider: Any = None,
) -> Published:
    """Validate and publish ``pipeline``; create the endpoint once, add a default version after that."""
    errors = pipeline.validate()
    if errors:
        raise SystemExit("error: the pipeline does not validate:\n  " + "\n  ".join(map(str, errors)))
    published = pipeline.publish(
        name=endpoint_name,
        description="sheetdrop extract: workbook -> parquet -> registered datasets",
        version=version,
        continue_on_step_failure=False,
    )
    endpoint = find_endpoint(workspace, endpoint_name, _workflow_provider)
    if endpoint is None:
        endpoint = PipelineEndpoint.publish(
            workspace=workspace, name=endpoint_name,
            description="sheetdrop extract; the Function submits its default version",
            pipeline=published, _workflow_provider=_workflow_provider)
        created = True
    else:
        if endpoint.status != "Active":
            endpoint.enable()
        endpoint.add_default(published)
        created = False
    return Published(endpoint_id=endpoint.id, endpoint_url=endpoint.endpoint, pipeline_id=published.id,
                     created=created)


def git_version() -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             check=True, cwd=snapshot.REPO)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def parse_args(argv: list[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_arguments(parser, env)
    parser.add_argument("--compute", default=env.get("AZUREML_COMPUTE", DEFAULT_COMPUTE_NAME))
    parser.add_argument("--vm-size", default=env.get("AZUREML_VM_SIZE", DEFAULT_VM_SIZE))
    parser.add_argument("--max-nodes", type=int, default=int(env.get("AZUREML_MAX_NODES", "2")))
    # Accepted, and unused since the step reads its input itself (infra/hooks/postprovision.sh still passes it).
    parser.add_argument("--input-datastore", default=env.get("INPUT_DATASTORE", "sheetdrop_input"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--output-datastore", default=env.get("OUTPUT_DATASTORE", "workspaceblobstore"))
    parser.add_argument("--endpoint-name", default=env.get("AZUREML_PIPELINE_ENDPOINT_NAME", DEFAULT_ENDPOINT_NAME))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, os.environ)
    try:
        workspace = connect(args)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"workspace: {workspace.name} ({workspace.resource_group}, {workspace.location})")
    output_datastore = Datastore.get(workspace, args.output_datastore)
    compute = get_or_create_compute(workspace, args.compute, args.vm_size, args.max_nodes)
    # The step's source: the snapshot the local runner runs too (pipeline.snapshot); publishing uploads it.
    with tempfile.TemporaryDirectory(prefix="sheetdrop-step-") as tmp:
        built = build.build_pipeline(
            workspace,
            compute_target=compute,
            environment=build.build_environment(),
            output_datastore=output_datastore,
            source_directory=snapshot.assemble(Path(tmp) / "snapshot"),
            # The step's limits travel with the published pipeline (SHEETDROP_MAX_CELLS, …), as literal
            # --setting arguments of the step.
            step_settings=os.environ,
        )
        result = publish_behind_endpoint(workspace, built.pipeline, endpoint_name=args.endpoint_name,
                                         version=git_version())
    print(f"published pipeline: {result.pipeline_id}")
    print(f"pipeline endpoint {'created' if result.created else 'updated (new default version)'}: "
          f"{args.endpoint_name}")
    print(f"AZUREML_PIPELINE_ENDPOINT_ID={result.endpoint_id}")
    print(f"AZUREML_PIPELINE_ENDPOINT_URL={result.endpoint_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
