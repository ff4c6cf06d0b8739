"""The deploy bundle on its own: what `func azure functionapp publish` zips, run on requirements.txt alone.

Every other test runs in .venv, next to the dev host, the pipeline builder, the step's snapshot and
pandas, so an import of any of them from the deployed code would pass there and fail only in Azure.
Here the bundle is built from .funcignore, its file list is checked, and function_app is indexed in a
fresh virtual environment holding requirements.txt only, with the app settings a deployed Function has.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pathspec
import pytest

REPO = Path(__file__).resolve().parent.parent
FUNCIGNORE = (REPO / ".funcignore").read_text()
TOP_LEVEL = ["function_app.py", "host.json", "requirements.txt", "sheetdrop", "step_scripts"]
NOT_DEPLOYED = ("sheetdrop_local/", "pipeline/", "tests/", "benchmarks/", "samples/", "docs/", "node_modules/")
#: What a deployed Function must never import: the local stack, the AzureML SDK, the step's dependencies.
LOCAL_STACK = ["sheetdrop_local", "pipeline", "azureml", "pandas", "pyarrow"]
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
import sheetdrop
from sheetdrop.settings import load_settings

functions = [{{"name": fn.get_function_name(), "bindings": json.loads(fn.get_function_json())["bindings"]}}
             for fn in function_app.app.get_functions()]
settings = load_settings()
# Every deployed module, the ones the functions import only when they run included.
modules = [importlib.import_module(m.name).__name__ for m in pkgutil.walk_packages(sheetdrop.__path__, "sheetdrop.")]
print(json.dumps({{
    "functions": functions, "backend": settings.backend, "modules": modules,
    "importable": [name for name in {LOCAL_STACK!r} if importlib.util.find_spec(name) is not None],
    "imported": sorted({{name.partition(".")[0] for name in sys.modules}} & set({LOCAL_STACK!r})),
}}))
"""
LOAD_SETTINGS = """
from sheetdrop.settings import SettingsError, load_settings
try:
    load_settings()
except SettingsError as exc:
    print(exc)
"""


def repo_files() -> list[str]:
    """The files git sees: tracked, and untracked but not ignored (publish zips the folder, not a commit)."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout
    return sorted({name for name in listing.split("\0") if name and (REPO / name).is_file()})


def core_tools_accepts(rules: str) -> Callable[[str], bool]:
    """Core Tools' own .funcignore matcher, ported from GitIgnoreParser.Accepts in
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


def expected_files(candidates: list[str]) -> list[str]:
    sheetdrop = [name for name in candidates if name.startswith("sheetdrop/") and name.endswith(".py")]
    return sorted(["function_app.py", "host.json", "requirements.txt", *sheetdrop,
                   "step_scripts/__init__.py", "step_scripts/contract.py", "step_scripts/read_options.py"])


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = pathspec.GitIgnoreSpec.from_lines(FUNCIGNORE.splitlines())
    root = tmp_path_factory.mktemp("bundle")
    for name in repo_files():
        if not spec.match_file(name):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    return root


@pytest.fixture(scope="session")
def bundle_python(tmp_path_factory: pytest.TempPathFactory, bundle: Path) -> Path:
    """A fresh virtual environment with requirements.txt installed, as the remote build makes it."""
    env_dir = tmp_path_factory.mktemp("bundle-venv")
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(bundle / "requirements.txt")],
                   check=True)
    return python


def run_in_bundle(python: Path, bundle: Path, script: str, settings: dict[str, str]) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(bundle)), **settings}
    # -B: no __pycache__ in the bundle, whose file list the other tests read (in whatever order they run).
    done = subprocess.run([str(python), "-B", "-c", script], cwd=bundle, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"the bundle failed:\n{done.stderr}"
    return done.stdout


def test_bundle_holds_the_function_app_and_nothing_else(bundle: Path) -> None:
    files = sorted(path.relative_to(bundle).as_posix() for path in bundle.rglob("*") if path.is_file())
    assert sorted(path.name for path in bundle.iterdir()) == TOP_LEVEL
    assert files == expected_files(repo_files())
    assert "sheetdrop/submit/azureml.py" in files and "sheetdrop/settings.py" in files
    assert [name for name in files if name.startswith(NOT_DEPLOYED)] == []
    assert [name for name in files if name.startswith("step_scripts/")] == [
        "step_scripts/__init__.py", "step_scripts/contract.py", "step_scripts/read_options.py"]


def test_core_tools_reads_funcignore_the_same_way(bundle: Path) -> None:
    # .funcignore must mean the same to git's rules (the bundle fixture) and to the tool that publishes.
    # The folder as GetLocalFiles walks it: .venv, node_modules, __pycache__ and untracked files included.
    accepts = core_tools_accepts(FUNCIGNORE)
    zipped = []
    for folder, subfolders, names in os.walk(REPO):
        subfolders[:] = [name for name in subfolders if name not in (".git", ".vscode")]
        for name in names:
            path = Path(folder, name).relative_to(REPO).as_posix()
            if name not in (".funcignore", ".gitignore", "local.settings.json", "project.lock.json") and accepts(path):
                zipped.append(path)
    assert sorted(zipped) == sorted(path.relative_to(bundle).as_posix() for path in bundle.rglob("*")
                                    if path.is_file())


def test_function_app_indexes_on_requirements_txt_alone(bundle: Path, bundle_python: Path) -> None:
    report = json.loads(run_in_bundle(bundle_python, bundle, INDEX, APP_SETTINGS))
    assert report["functions"] == [
        {"name": "workbook_dropped", "bindings": [{
            "direction": "IN", "type": "blobTrigger", "name": "client", "path": "%INPUT_CONTAINER%/{name}",
            "connection": "INPUT_STORAGE", "source": "EventGrid",
        }]},
        {"name": "abandoned_claims", "bindings": [{
            "direction": "IN", "type": "timerTrigger", "name": "timer", "schedule": "0 */5 * * * *", "useMonitor": True,
        }]},
    ]
    assert report["backend"] == "azureml"
    assert "sheetdrop.submit.azureml" in report["modules"]
    assert report["importable"] == report["imported"] == []


def test_backend_unset_in_azure_is_refused(bundle: Path, bundle_python: Path) -> None:
    settings = {name: value for name, value in APP_SETTINGS.items() if name != "SHEETDROP_BACKEND"}
    message = run_in_bundle(bundle_python, bundle, LOAD_SETTINGS, settings)
    assert message.startswith("app setting SHEETDROP_BACKEND is not set in Azure"), message
