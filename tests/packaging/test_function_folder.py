"""The Function app is the folder function/, packaged the way the tools that deploy it package it.

`azd deploy` (azure.yaml: `project: ./function`) zips what azd's walk of the folder keeps (azd_walk.py, a
replica of its source); `func azure functionapp publish` run inside the folder zips what Core Tools'
.funcignore matcher accepts (ported below). Both must hold every file of the folder's code and nothing a
local run leaves there; then function_app is imported and indexed in a fresh virtual environment holding
function/requirements.txt only, with the app settings a deployed Function has. The same walk over b5e30cf's
root layout (fixtures/b5e30cf) yields the three files that made `azd up` deploy a Function without its
code, and importing them fails as it did in Azure: the replica reproduces the bug it guards against.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from azd_walk import azd_function_zip_entries, extract

from fresh_venv import fresh_venv

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "function"
B5E30CF = Path(__file__).resolve().parent / "fixtures" / "b5e30cf"
#: What a deployed Function must never import: the local stack, the AzureML SDK, the step's dependencies.
LOCAL_STACK = ["sheetdrop_local", "sheetdrop_step", "pipeline", "azureml", "pandas", "pyarrow"]
#: The app settings of a Function in Azure (WEBSITE_INSTANCE_ID: the platform's "this is Azure").
APP_SETTINGS = {
    "SHEETDROP_BACKEND": "azureml",
    "INPUT_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
    "AZUREML_PIPELINE_ENDPOINT_URL": "https://westeurope.api.azureml.ms/pipelines/v1.0/subscriptions/s/resourceGroups/rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/ws/PipelineRuns/PipelineEndpointSubmit/Id/e1",
    "WEBSITE_INSTANCE_ID": "x",
}
INDEX = f"""
import importlib, importlib.util, json, pkgutil, sys
import function_app
import sheetdrop, sheetdrop_contract
from sheetdrop.settings import load_settings

functions = [{{"name": fn.get_function_name(), "bindings": json.loads(fn.get_function_json())["bindings"]}}
             for fn in function_app.app.get_functions()]
settings = load_settings()
# Every deployed module, the ones the functions import only when they run included.
modules = [importlib.import_module(m.name).__name__ for package in (sheetdrop, sheetdrop_contract)
           for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
print(json.dumps({{
    "functions": functions, "backend": settings.backend, "modules": modules,
    "importable": [name for name in {LOCAL_STACK!r} if importlib.util.find_spec(name) is not None],
    "imported": sorted({{name.partition(".")[0] for name in sys.modules}} & set({LOCAL_STACK!r})),
}}))
"""


def code_files(folder: Path) -> list[str]:
    """The folder's files that git tracks: its code, with nothing chosen by hand."""
    listing = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=folder, capture_output=True, text=True,
                             check=True).stdout
    return sorted(name for name in listing.split("\0") if name)


def core_tools_accepts(rules: str) -> Callable[[str], bool]:
    """Core Tools' .funcignore matcher, ported from GitIgnoreParser.Accepts in
    https://github.com/Azure/azure-functions-core-tools/blob/main/src/Cli/func/Common/GitIgnoreParser.cs
    (a C# port of codemix/gitignore-parser; FileSystemHelpers.GetLocalFiles applies it to every file of the
    app folder and ZipHelper.GetAppZipFile zips what it accepts). It supports `!`, but not with git's rules:
    a path matching any `!` pattern is accepted wherever that line stands, every pattern is anchored at the
    root, `*` is `[^/]+`, `**` is `.+`, and a match must end on a word boundary."""
    def regex(pattern: str) -> str:
        return re.sub(r"[\-\[\]/{}()+?.\\^$|]", r"\\\g<0>", pattern).replace("**", "(.+)").replace("*", "([^/]+)")

    lines = [line.strip() for line in rules.split("\n")]
    lines = [line for line in lines if line and not line.startswith("#")]

    def matcher(negative: bool) -> re.Pattern[str]:
        patterns = [regex(line.removeprefix("!").removeprefix("/"))
                    for line in lines if line.startswith("!") == negative]
        return re.compile("^((" + ")|(".join(patterns) + "))\\b", re.ASCII) if patterns else re.compile("$^")

    positive, negative = matcher(False), matcher(True)
    return lambda path: bool(negative.match(path)) or not positive.match(path)


def core_tools_zip(folder: Path) -> list[str]:
    """GetLocalFiles: every file of the folder, less the ones it never takes, then the .funcignore filter."""
    accepts = core_tools_accepts((folder / ".funcignore").read_text())
    zipped = []
    for here, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if name not in (".git", ".vscode")]
        for name in names:
            path = Path(here, name).relative_to(folder).as_posix()
            if name not in (".funcignore", ".gitignore", "local.settings.json", "project.lock.json") and accepts(path):
                zipped.append(path)
    return sorted(zipped)


@pytest.fixture(scope="module")
def dirtied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """function/ as a developer's checkout has it after running it: bytecode, a venv, local settings."""
    folder = tmp_path_factory.mktemp("checkout") / "function"
    shutil.copytree(FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for made in ("__pycache__/function_app.cpython-311.pyc", "sheetdrop/__pycache__/trigger.cpython-311.pyc",
                 "sheetdrop/submit/__pycache__/azureml.cpython-311.pyc", ".venv/pyvenv.cfg",
                 ".venv/lib/python3.11/site-packages/x.py", "function_env/pyvenv.cfg", "local.settings.json",
                 "sheetdrop.egg-info/PKG-INFO"):
        (folder / made).parent.mkdir(parents=True, exist_ok=True)
        (folder / made).write_text("")
    return folder


@pytest.fixture(scope="module")
def function_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with function/requirements.txt installed, as the remote build makes it."""
    return fresh_venv(tmp_path_factory.mktemp("function-venv"), FOLDER / "requirements.txt")


def run_in(python: Path, folder: Path, script: str, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(folder)), **settings}
    # -B: the unpacked zip stays as it was unpacked. The script's folder comes first on sys.path, as the
    # Python worker puts the app's root there.
    return subprocess.run([str(python), "-B", "-c", script], cwd=folder, env=env, capture_output=True, text=True)


def test_azd_zips_the_folders_code_and_nothing_a_local_run_left(dirtied: Path) -> None:
    entries = azd_function_zip_entries(dirtied)
    expected = [name for name in code_files(FOLDER) if name not in (".funcignore", "local.settings.example.json")]
    assert entries == expected
    assert {"function_app.py", "host.json", "requirements.txt", "sheetdrop/trigger.py",
            "sheetdrop/submit/azureml/client.py", "sheetdrop_contract/contract.py",
            "sheetdrop_contract/read_options.py"} <= set(entries)


def test_core_tools_zips_the_same_files_as_azd(dirtied: Path) -> None:
    assert core_tools_zip(dirtied) == azd_function_zip_entries(dirtied)


def test_what_azd_deploys_indexes_on_requirements_txt_alone(dirtied: Path, function_python: Path,
                                                            tmp_path: Path) -> None:
    unpacked = tmp_path / "wwwroot"
    extract(dirtied, unpacked)
    done = run_in(function_python, unpacked, INDEX, APP_SETTINGS)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["functions"] == [
        {"name": "workbook_dropped", "bindings": [{
            "direction": "IN", "type": "blobTrigger", "name": "client", "path": "%INPUT_CONTAINER%/{name}",
            "connection": "INPUT_STORAGE", "source": "EventGrid",
        }]},
        {"name": "abandoned_claims", "bindings": [{
            "direction": "IN", "type": "timerTrigger", "name": "timer", "schedule": "0 */5 * * * *", "useMonitor": True,
        }]},
        {"name": "batch_flush", "bindings": [{
            "direction": "IN", "type": "timerTrigger", "name": "timer", "schedule": "*/30 * * * * *",
            "useMonitor": False,
        }]},
    ]
    assert report["backend"] == "azureml"
    assert {"sheetdrop.submit.azureml", "sheetdrop.submit.azureml_v2", "sheetdrop_contract.contract"} <= set(
        report["modules"])
    assert report["importable"] == report["imported"] == []


def test_backend_unset_in_azure_is_refused(dirtied: Path, function_python: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "wwwroot"
    extract(dirtied, unpacked)
    settings = {name: value for name, value in APP_SETTINGS.items() if name != "SHEETDROP_BACKEND"}
    done = run_in(function_python, unpacked, "from sheetdrop.settings import SettingsError, load_settings\n"
                  "try:\n    load_settings()\nexcept SettingsError as exc:\n    print(exc)\n", settings)
    assert done.stdout.startswith("app setting SHEETDROP_BACKEND is not set in Azure"), done.stdout + done.stderr


def test_b5e30cfs_layout_deploys_without_its_code(function_python: Path, tmp_path: Path) -> None:
    assert azd_function_zip_entries(B5E30CF) == ["function_app.py", "host.json", "requirements.txt"]
    unpacked = tmp_path / "wwwroot"
    extract(B5E30CF, unpacked)
    done = run_in(function_python, unpacked, "import function_app", APP_SETTINGS)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "ModuleNotFoundError: No module named 'sheetdrop'"
