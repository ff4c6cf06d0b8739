"""Publish the v2 extract pipeline behind a batch endpoint: ``python -m pipeline.v2.publish``
(= ``sheetdrop publish --v2``; runs in .venv-aml2 with azure-ai-ml, never in the Function).

Idempotent: the pipeline component is versioned by the hash of what it is made of (the YAML files, the step's
snapshot and the step settings), and looked up before it is registered; the endpoint and the deployment are
read first and written only when they differ from what they should be, so publishing unchanged sources a
second time sends no PUT at all (the same scoring URI every time), and the deployment is made the endpoint's
default. Prints the scoring URI for ``AZUREML_BATCH_ENDPOINT_URL``.

The definitions are ``component.yml``, ``pipeline.yml``, ``endpoint.yml`` and ``deployment.yml`` beside
this file (CLI v2 YAML, loaded with azure-ai-ml's own schemas). Sources: docs/azureml-v2.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
#: A batch endpoint's name: 3-32 letters, digits and single dashes, starting with a letter, unique per region
#: (azure-ai-ml's validate_endpoint_or_deployment_name; learn: how-to-use-batch-pipeline-deployments).
ENDPOINT_PREFIX = "sheetdrop-"


@dataclass(frozen=True)
class Published:
    component_version: str
    endpoint_url: str
    deployment: str


def endpoint_name_for(subscription_id: str, resource_group: str, workspace: str) -> str:
    """The endpoint's name when the deployment did not give one (``azd provision`` does:
    AZUREML_BATCH_ENDPOINT_NAME = sheetdrop-<resource token>): one per workspace, so two deployments in a region
    do not take each other's name."""
    digest = hashlib.sha256(f"{subscription_id}/{resource_group}/{workspace}".lower().encode()).hexdigest()
    return f"{ENDPOINT_PREFIX}{digest[:13]}"


def step_setting_values(env: Mapping[str, str]) -> dict[str, str]:
    return {name: env[name] for name in contract.STEP_SETTING_NAMES if env.get(name, "").strip()}


def source_hash(step_settings: Mapping[str, str] | None = None) -> str:
    """What the components are made of: this folder's YAML, the step's snapshot and the step settings."""
    digest = hashlib.sha256(snapshot.digest().encode())
    for path in sorted(HERE.glob("*.yml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for argument in contract.setting_arguments(dict(sorted((step_settings or {}).items()))):
        digest.update(argument.encode() + b"\0")
    return digest.hexdigest()[:16]


def definitions(*, version: str, endpoint_name: str, compute: str, output_datastore: str,
                step_settings: Mapping[str, str], code: Path | str) -> tuple[Any, Any, Any]:
    """The pipeline component (its step inside), the endpoint and the deployment, as azure-ai-ml objects.
    ``code``: the step's snapshot as :func:`pipeline.snapshot.assemble` made it (what gets uploaded)."""
    pipeline = load_component(PIPELINE, params_override=[{"version": version}])
    step = pipeline.jobs["extract"].component
    step.code = str(code)
    # The step settings become literal arguments of the command: its registered form shows them, and they are
    # shell-inert words (contract.encode_argument), so appending them is safe.
    settings = contract.setting_arguments(step_setting_values(step_settings))
    if settings:
        step.command = f"{step.command} {' '.join(settings)}"
    endpoint = load_batch_endpoint(ENDPOINT, params_override=[{"name": endpoint_name}])
    deployment = load_pipeline_component_batch_deployment(DEPLOYMENT, params_override=[
        {"endpoint_name": endpoint_name},
        {"settings": {"default_compute": compute, "default_datastore": output_datastore,
                      "continue_on_step_failure": False, "force_rerun": True}}])
    return pipeline, endpoint, deployment


def default_deployment(endpoint: Any) -> str | None:
    """The endpoint's default deployment. An endpoint read from the service carries the REST model
    (BatchEndpointDefaults, a mapping keyed by wire names: ``deploymentName``), one built here a dict."""
    defaults = endpoint.defaults
    if isinstance(defaults, dict):
        return defaults.get("deployment_name")
    return getattr(defaults, "deployment_name", None)


#: On the deployment: what it deploys (component id and settings). A deployment read back through azure-ai-ml is a
#: plain BatchDeployment that has neither (entities/_deployment/batch_deployment.py: _from_rest_object), but its tags.
PUBLISHED_TAG = "sheetdrop_published"


def published_tag(component_id: str, settings: Mapping[str, Any] | None) -> str:
    # The service keeps settings as strings ("False"), so they are compared as the REST form writes them.
    what = {"component": component_id, "settings": {k: str(v).lower() for k, v in (settings or {}).items()}}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def publish(ml_client: Any, pipeline: Any, endpoint: Any, deployment: Any) -> Published:
    from azure.core.exceptions import ResourceNotFoundError

    def existing(get: Any, *args: str) -> Any:
        try:
            return get(*args)
        except ResourceNotFoundError:
            return None

    # The version is the hash of what it is made of: registered already means registered as it is now.
    registered = existing(ml_client.components.get, pipeline.name, pipeline.version) or \
        ml_client.components.create_or_update(pipeline)  # registers the step component with it
    deployment.component = registered.id
    deployment.tags = {**(deployment.tags or {}), PUBLISHED_TAG: published_tag(registered.id, deployment.settings)}
    current = existing(ml_client.batch_endpoints.get, endpoint.name)
    if current is None or (current.description, current.auth_mode) != (endpoint.description, endpoint.auth_mode):
        # An update is a PUT of the whole endpoint: keep its default deployment rather than clear it.
        kept = default_deployment(current) if current is not None else None
        endpoint.defaults = {"deployment_name": kept} if kept else None
        current = ml_client.batch_endpoints.begin_create_or_update(endpoint).result()
    found = existing(ml_client.batch_deployments.get, deployment.name, endpoint.name)
    if found is None or (found.tags or {}).get(PUBLISHED_TAG) != deployment.tags[PUBLISHED_TAG]:
        ml_client.batch_deployments.begin_create_or_update(deployment).result()
    if default_deployment(current) != deployment.name:
        current.defaults = {"deployment_name": deployment.name}
        current = ml_client.batch_endpoints.begin_create_or_update(current).result()
    return Published(registered.version, current.scoring_uri, deployment.name)


def ensure_compute(ml_client: Any, name: str, vm_size: str, max_nodes: int) -> None:
    from azure.ai.ml.constants import ManagedServiceIdentityType
    from azure.ai.ml.entities import AmlCompute, IdentityConfiguration
    from azure.core.exceptions import ResourceNotFoundError

    try:
        ml_client.compute.get(name)
        print(f"compute: using {name}")
    except ResourceNotFoundError:
        print(f"compute: creating AmlCompute {name} ({vm_size}, 0..{max_nodes} nodes)")
        # Its identity reads the input and registers the data assets (docs/azureml-v2.md, "The step's identity").
        ml_client.compute.begin_create_or_update(AmlCompute(
            name=name, size=vm_size, min_instances=0, max_instances=max_nodes, idle_time_before_scale_down=900,
            identity=IdentityConfiguration(type=ManagedServiceIdentityType.SYSTEM_ASSIGNED))).result()


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
    parser.add_argument("--endpoint-name", default=env.get("AZUREML_BATCH_ENDPOINT_NAME"),
                        help="the batch endpoint (unique per region): AZUREML_BATCH_ENDPOINT_NAME, which azd provision "
                             "derives from the deployment's resource token; default: sheetdrop-<hash of the workspace>")
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
    endpoint_name = args.endpoint_name or endpoint_name_for(args.subscription_id, args.resource_group, args.workspace)
    settings = step_setting_values(os.environ)
    with tempfile.TemporaryDirectory(prefix="sheetdrop-step-") as tmp:
        parts = definitions(version=source_hash(settings), endpoint_name=endpoint_name, compute=args.compute,
                            output_datastore=args.output_datastore, step_settings=settings,
                            code=snapshot.assemble(Path(tmp) / "snapshot"))
        result = publish(ml_client, *parts)
    print(f"component version: {result.component_version}; default deployment: {result.deployment}")
    print(f"AZUREML_BATCH_ENDPOINT_URL={result.endpoint_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
