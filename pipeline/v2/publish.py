"""Publish the v2 extract pipeline behind a batch endpoint: ``python -m pipeline.v2.publish``
(= ``sheetdrop publish --v2``; runs in .venv-aml2 with azure-ai-ml, never in the Function).

Idempotent: the components are versioned by the hash of what they are made of (the YAML files and
the step's snapshot), so publishing unchanged sources registers nothing new; the endpoint and the
deployment are created or updated in place (the same scoring URI every time), and the deployment
is made the endpoint's default. Prints the scoring URI for ``AZUREML_BATCH_ENDPOINT_URL``.

The definitions are ``component.yml``, ``pipeline.yml``, ``endpoint.yml`` and ``deployment.yml`` beside
this file (CLI v2 YAML, loaded with azure-ai-ml's own schemas). Sources: docs/azureml-v2.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.ai.ml import load_batch_endpoint, load_component
from azure.ai.ml.entities._load_functions import load_pipeline_component_batch_deployment

from pipeline import snapshot
from sheetdrop_contract import contract

HERE = Path(__file__).resolve().parent
COMPONENT, PIPELINE, ENDPOINT, DEPLOYMENT = (HERE / f"{n}.yml" for n in ("component", "pipeline", "endpoint",
                                                                            "deployment"))


@dataclass(frozen=True)
class Published:
    component_version: str
    endpoint_url: str
    deployment: str


def source_hash() -> str:
    """What the components are made of: this folder's YAML and the step's snapshot."""
    digest = hashlib.sha256(snapshot.digest().encode())
    for path in sorted(HERE.glob("*.yml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def definitions(*, version: str, endpoint_name: str, compute: str, output_datastore: str,
                step_settings: Mapping[str, str], code: Path) -> tuple[Any, Any, Any]:
    """The pipeline component (its step inside), the endpoint and the deployment, as azure-ai-ml objects.
    ``code``: the step's snapshot as :func:`pipeline.snapshot.assemble` made it (what gets uploaded)."""
    pipeline = load_component(PIPELINE, params_override=[{"version": version}])
    step = pipeline.jobs["extract"].component
    step.version = version
    step.code = str(code)
    # The step checks its output's datastore against --output_datastore, so both name the same one.
    step.command = step.command.replace("--output_datastore workspaceblobstore",
                                        f"--output_datastore {output_datastore}")
    step.environment_variables = {**step.environment_variables, **{
        k: v for k, v in step_settings.items() if k in contract.STEP_SETTING_NAMES and v}}
    endpoint = load_batch_endpoint(ENDPOINT, params_override=[{"name": endpoint_name}])
    deployment = load_pipeline_component_batch_deployment(DEPLOYMENT, params_override=[
        {"endpoint_name": endpoint_name},
        {"settings": {"default_compute": compute, "default_datastore": output_datastore,
                      "continue_on_step_failure": False}}])
    return pipeline, endpoint, deployment


def publish(ml_client: Any, pipeline: Any, endpoint: Any, deployment: Any) -> Published:
    registered = ml_client.components.create_or_update(pipeline)  # registers the step component with it
    deployment.component = registered.id or f"azureml:{registered.name}:{registered.version}"
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):  # a new endpoint has no default to keep
        # An update is a PUT of the whole endpoint: keep its default deployment rather than clear it.
        endpoint.defaults = ml_client.batch_endpoints.get(endpoint.name).defaults
    ml_client.batch_endpoints.begin_create_or_update(endpoint).result()
    ml_client.batch_deployments.begin_create_or_update(deployment).result()
    current = ml_client.batch_endpoints.get(endpoint.name)
    # BatchEndpoint.defaults is a dict {"deployment_name": …} (azure-ai-ml's BatchEndpoint).
    if (current.defaults or {}).get("deployment_name") != deployment.name:
        current.defaults = {"deployment_name": deployment.name}
        current = ml_client.batch_endpoints.begin_create_or_update(current).result()
    return Published(registered.version, current.scoring_uri, deployment.name)


def ensure_compute(ml_client: Any, name: str, vm_size: str, max_nodes: int) -> None:
    from azure.ai.ml.entities import AmlCompute
    from azure.core.exceptions import ResourceNotFoundError

    try:
        ml_client.compute.get(name)
        print(f"compute: using {name}")
    except ResourceNotFoundError:
        print(f"compute: creating AmlCompute {name} ({vm_size}, 0..{max_nodes} nodes)")
        ml_client.compute.begin_create_or_update(AmlCompute(
            name=name, size=vm_size, min_instances=0, max_instances=max_nodes,
            idle_time_before_scale_down=900, identity={"type": "system_assigned"})).result()


def parse_args(argv: list[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.v2.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscription-id", default=env.get("AZUREML_SUBSCRIPTION_ID"))
    parser.add_argument("--resource-group", default=env.get("AZUREML_RESOURCE_GROUP"))
    parser.add_argument("--workspace", default=env.get("AZUREML_WORKSPACE"))
    parser.add_argument("--compute", default=env.get("AZUREML_COMPUTE", "sheetdrop-cpu"))
    parser.add_argument("--vm-size", default=env.get("AZUREML_VM_SIZE", "STANDARD_DS3_V2"))
    parser.add_argument("--max-nodes", type=int, default=int(env.get("AZUREML_MAX_NODES", "2")))
    parser.add_argument("--output-datastore", default=env.get("OUTPUT_DATASTORE", "workspaceblobstore"))
    parser.add_argument("--endpoint-name", default=env.get("AZUREML_BATCH_ENDPOINT_NAME", "sheetdrop-extract"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, os.environ)
    missing = [flag for flag, value in (("--subscription-id", args.subscription_id),
                                        ("--resource-group", args.resource_group),
                                        ("--workspace", args.workspace)) if not value]
    if missing:
        print(f"error: no workspace: set {', '.join(missing)} (AZUREML_SUBSCRIPTION_ID, AZUREML_RESOURCE_GROUP, "
              "AZUREML_WORKSPACE)", file=sys.stderr)
        return 2
    from azure.ai.ml import MLClient
    from azure.identity import AzureCliCredential

    # `az login` is all a person needs, as for the v1 publisher's default (--auth az).
    ml_client = MLClient(AzureCliCredential(), args.subscription_id, args.resource_group, args.workspace)
    ensure_compute(ml_client, args.compute, args.vm_size, args.max_nodes)
    with tempfile.TemporaryDirectory(prefix="sheetdrop-step-") as tmp:
        parts = definitions(version=source_hash(), endpoint_name=args.endpoint_name, compute=args.compute,
                            output_datastore=args.output_datastore, step_settings=os.environ,
                            code=snapshot.assemble(Path(tmp) / "snapshot"))
        result = publish(ml_client, *parts)
    print(f"component version: {result.component_version}; default deployment: {result.deployment}")
    print(f"AZUREML_BATCH_ENDPOINT_URL={result.endpoint_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
