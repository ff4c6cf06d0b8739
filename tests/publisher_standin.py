"""A stand-in for the AzureML environments' Python (SHEETDROP_AML_PYTHON / SHEETDROP_AML2_PYTHON) under the
azd hooks: `python -m pipeline.publish …` and `python -m pipeline.v2.publish …`.

It refuses a workspace that does not exist in the simulated subscription, counts each publish as a new
version (v1: a new PublishedPipeline behind the same endpoint; v2: a new component version) and prints
the lines the hooks read, the endpoint's URL last. tests/test_azd_hooks.py hands every argv it logs to
the publishers' own argument parsers, in .venv-aml and .venv-aml2.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path


def main() -> int:
    state = Path(os.environ["STUB_DIR"])
    argv = sys.argv[1:]
    with (state / "calls.jsonl").open("a") as f:
        f.write(json.dumps({"tool": "publish", "argv": argv}) + "\n")
    module, args = argv[1], dict(zip(argv[2::2], argv[3::2], strict=False))
    cloud = json.loads((state / "cloud.json").read_text())
    group = cloud["groups"].get(args["--resource-group"], {})
    workspace = args["--workspace"]
    if workspace not in group.get("workspaces", {}):
        print(f"error: no workspace {workspace} in {args['--resource-group']} ({args['--subscription-id']})",
              file=sys.stderr)
        return 2
    counts = cloud["published"].setdefault(workspace, {"pipeline.publish": 0, "pipeline.v2.publish": 0})
    counts[module] += 1
    (state / "cloud.json").write_text(json.dumps(cloud, indent=1))
    region = cloud["location"]
    if module == "pipeline.publish":
        endpoint_id = uuid.uuid5(uuid.NAMESPACE_URL, workspace + args["--endpoint-name"])
        print(f"workspace: {workspace} ({args['--resource-group']}, {region})")
        print(f"published pipeline: p{counts[module]}")
        print(f"AZUREML_PIPELINE_ENDPOINT_ID={endpoint_id}")
        print(f"AZUREML_PIPELINE_ENDPOINT_URL=https://{region}.api.azureml.ms/pipelines/v1.0/subscriptions/"
              f"{args['--subscription-id']}/resourceGroups/{args['--resource-group']}/providers/"
              f"Microsoft.MachineLearningServices/workspaces/{workspace}/PipelineRuns/PipelineEndpointSubmit/Id/"
              f"{endpoint_id}")
        return 0
    print(f"component version: v{counts[module]}; default deployment: extract")
    print(f"AZUREML_BATCH_ENDPOINT_URL=https://{args['--endpoint-name']}.{region}.inference.ml.azure.com/jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
