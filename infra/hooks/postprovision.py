"""azd postprovision: publish the backend SHEETDROP_AZUREML_API names, then point the Function at it.

- azureml (the default): `python -m pipeline.publish` in .venv-aml puts the extract pipeline behind its
  PipelineEndpoint and prints AZUREML_PIPELINE_ENDPOINT_URL.
- azureml-v2: `python -m pipeline.v2.publish` in .venv-aml2 deploys the pipeline component behind a
  batch endpoint and prints AZUREML_BATCH_ENDPOINT_URL.

Both run as the person (or CI principal) signed in to the Azure CLI (`--auth az` / AzureCliCredential).
The URL goes into the azd environment, so every later provision sets it in the template
(infra/main.parameters.json), and into the Function's app settings at once, in one update together with
SHEETDROP_BACKEND: the Function never sees azureml-v2 without its URL (infra/app/function.bicep keeps
azureml until then).

Run twice, it changes nothing: publishing is skipped while the sources the publishers read and the
workspace are those of the last publish (SHEETDROP_PUBLISHED), and app settings are written only when
they differ.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hooklib import README, ROOT, HookError, az, az_json, main, set_values, tool, value

PUBLISHED = "SHEETDROP_PUBLISHED"
API = "SHEETDROP_AZUREML_API"
#: What the publishers build from (the step's snapshot is step/ + function/sheetdrop_contract/,
#: pipeline/snapshot.py): a change under one of these is a new version to publish.
SOURCES = ("pipeline", "step", "function/sheetdrop_contract", "requirements-aml.txt", "requirements-aml2.txt")


@dataclass(frozen=True)
class Publisher:
    module: str
    make_target: str
    venv: str
    #: An interpreter to use instead of the venv's (Windows without make; tests).
    python_variable: str
    url_setting: str


PUBLISHERS = {
    "azureml": Publisher("pipeline.publish", "setup-aml", ".venv-aml", "SHEETDROP_AML_PYTHON",
                         "AZUREML_PIPELINE_ENDPOINT_URL"),
    "azureml-v2": Publisher("pipeline.v2.publish", "setup-aml2", ".venv-aml2", "SHEETDROP_AML2_PYTHON",
                            "AZUREML_BATCH_ENDPOINT_URL"),
}


def sources_digest(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        top = root / name
        if top.is_file():
            files = [top]
        elif top.is_dir():
            files = sorted(path for path in top.rglob("*") if path.is_file())
        else:
            continue  # the folders of the layout not (or no longer) present
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def interpreter(publisher: Publisher) -> str:
    """The publisher's Python: the variable's, else the venv `make` builds (nothing to do if up to date)."""
    chosen = os.environ.get(publisher.python_variable, "").strip()
    if chosen:
        return chosen
    if shutil.which("make"):
        result = subprocess.run([tool("make"), publisher.make_target], cwd=ROOT, stdin=subprocess.DEVNULL,
                                check=False)
        if result.returncode != 0:
            raise HookError(f"`make {publisher.make_target}` failed (its output is above)")
    python = ROOT / publisher.venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not python.is_file():
        raise HookError(f"{publisher.venv} is missing: build it with `make {publisher.make_target}`, or without "
                        f"make set {publisher.python_variable} to a Python that has its requirements ({README})")
    return str(python)


def publish(publisher: Publisher, python: str, args: list[str]) -> str:
    """Run the publisher with its output shown as it comes; the URL it prints last."""
    argv = [python, "-m", publisher.module, *args]
    lines = []
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    if proc.returncode != 0:
        raise HookError(f"python -m {publisher.module} failed (exit {proc.returncode}; its output is above)")
    prefix = f"{publisher.url_setting}="
    urls = [line[len(prefix):].strip() for line in lines if line.startswith(prefix)]
    if not urls or not urls[-1]:
        raise HookError(f"python -m {publisher.module} printed no {publisher.url_setting} line")
    return urls[-1]


def publisher_args(api: str) -> list[str]:
    common = ["--subscription-id", value("AZUREML_SUBSCRIPTION_ID"), "--resource-group",
              value("AZURE_RESOURCE_GROUP"), "--workspace", value("AZUREML_WORKSPACE"), "--compute",
              value("AZUREML_COMPUTE")]
    if api == "azureml":
        # --auth az: tokens from the Azure CLI's login, no managed identity, no key. The cluster and the
        # input datastore exist already (infra/app/azureml.bicep).
        return ["--auth", "az", *common, "--input-datastore", value("INPUT_DATASTORE"), "--endpoint-name",
                value("AZUREML_PIPELINE_ENDPOINT_NAME")]
    return [*common, "--endpoint-name", value("AZUREML_BATCH_ENDPOINT_NAME")]


def wanted_settings(api: str, url: str) -> dict[str, str]:
    """What the Function needs for this backend (sheetdrop/settings.py reads each)."""
    settings = {PUBLISHERS[api].url_setting: url}
    if api == "azureml-v2":
        settings.update(AZUREML_SUBSCRIPTION_ID=value("AZUREML_SUBSCRIPTION_ID"),
                        AZUREML_RESOURCE_GROUP=value("AZURE_RESOURCE_GROUP"),
                        AZUREML_WORKSPACE=value("AZUREML_WORKSPACE"))
    # Written in the same single update as the URL: the app never holds this backend without it.
    settings["SHEETDROP_BACKEND"] = api
    return settings


def postprovision() -> None:
    api = value(API, required=False) or "azureml"
    if api not in PUBLISHERS:
        raise HookError(f"{API}={api!r} is not one of {', '.join(PUBLISHERS)}: `azd env set {API} azureml-v2`")
    publisher = PUBLISHERS[api]
    stamp = f"{api} {sources_digest()} {value('AZUREML_WORKSPACE_ID')}"
    url = value(publisher.url_setting, required=False)
    if url and value(PUBLISHED, required=False) == stamp:
        print(f"{api}: the sources and the workspace are those of the last publish; not published again")
    else:
        url = publish(publisher, interpreter(publisher), publisher_args(api))
        set_values({publisher.url_setting: url, PUBLISHED: stamp})

    target = ["--subscription", value("AZUREML_SUBSCRIPTION_ID"), "--resource-group", value("AZURE_RESOURCE_GROUP"),
              "--name", value("AZURE_FUNCTION_APP_NAME")]
    current = {item["name"]: item.get("value") for item in
               az_json("functionapp", "config", "appsettings", "list", *target) or []}
    changed = {key: val for key, val in wanted_settings(api, url).items() if current.get(key) != val}
    app = value("AZURE_FUNCTION_APP_NAME")
    if not changed:
        print(f"app settings of {app} already point at {api}")
        return
    az("functionapp", "config", "appsettings", "set", *target, "--settings",
       *(f"{key}={val}" for key, val in changed.items()), "--output", "none")
    print(f"app settings of {app} set: {', '.join(changed)}")


if __name__ == "__main__":
    main(postprovision)
