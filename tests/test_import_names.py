"""No module is imported under two names (``except contract.OutputPathError`` must catch what
``sheetdrop_contract.contract`` raises): checked in this process after a conversion and the Function's
import, and in the step's own process as the local runner starts it from its snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from conftest import REPO, SAMPLE
from sheetdrop_contract import contract
from sheetdrop_local.azurite import Azurite

PROJECT = ("function", "step", "sheetdrop_local", "pipeline")


def twice(modules: dict[str, str], roots: list[Path]) -> dict[str, list[str]]:
    """Files under ``roots`` that more than one module name was loaded from."""
    names: dict[str, list[str]] = defaultdict(list)
    for name, file in modules.items():
        path = Path(file).resolve()
        if any(path.is_relative_to(root) for root in roots):
            names[str(path)].append(name)
    return {file: sorted(found) for file, found in names.items() if len(found) > 1}


def loaded() -> dict[str, str]:
    return {name: module.__file__ for name, module in list(sys.modules.items())
            if getattr(module, "__file__", None)}


def test_one_name_per_module_after_a_conversion_and_the_functions_import(tmp_path: Path) -> None:
    import function_app  # noqa: F401  (the Function's whole import graph)
    from sheetdrop_local import cli, runner  # noqa: F401
    from sheetdrop_step.converter import convert_workbook
    from sheetdrop_step.extract import main  # noqa: F401

    assert len(convert_workbook(SAMPLE, tmp_path / "out")) == 3
    modules = loaded()
    assert twice(modules, [REPO / folder for folder in PROJECT]) == {}
    assert {"sheetdrop_contract.contract", "sheetdrop_step.converter", "sheetdrop.trigger"} <= set(modules)
    assert not {"contract", "convert", "converter", "read_options", "extract", "step_scripts"} & set(modules)


#: The step's process as Python starts ``python extract.py``: the script's folder first on sys.path,
#: the script as __main__; what it imported is written down when it exits.
RUN_ENTRY = """
import atexit, json, runpy, sys
entry, report = sys.argv[1], sys.argv[2]
sys.argv = [entry, *sys.argv[3:]]
sys.path.insert(0, entry.rsplit("/", 1)[0])
atexit.register(lambda: open(report, "w").write(json.dumps(
    {n: m.__file__ for n, m in list(sys.modules.items()) if getattr(m, "__file__", None)})))
runpy.run_path(entry, run_name="__main__")
"""


def test_one_name_per_module_in_the_step_run_from_its_snapshot(tmp_path: Path, step_snapshot: Path,
                                                                azurite: Azurite) -> None:
    from test_step import account, put_blob, step_argv

    report = tmp_path / "modules.json"
    argv = step_argv(account(azurite), tmp_path / "out", "workspaceblobstore", "sales",
                     put_blob(azurite, SAMPLE.read_bytes()))
    env = {k: v for k, v in os.environ.items() if k != "SHEETDROP_LOCAL_RUN"}
    env["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    done = subprocess.run([sys.executable, "-c", RUN_ENTRY, str(step_snapshot / contract.SCRIPT_NAME), str(report),
                           *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    modules = json.loads(report.read_text())
    assert twice(modules, [step_snapshot, *(REPO / folder for folder in PROJECT)]) == {}
    # Everything of the step comes from the snapshot AzureML is given, not from the checkout.
    ours = {name: Path(file) for name, file in modules.items() if name.startswith(("sheetdrop_step",
                                                                                    "sheetdrop_contract"))}
    assert "sheetdrop_step.converter" in ours and "sheetdrop_contract.contract" in ours
    assert all(path.resolve().is_relative_to(step_snapshot.resolve()) for path in ours.values()), ours


def test_pyproject_lists_every_package_under_its_one_name() -> None:
    """A package folder missing from pyproject.toml imports in an editable checkout but not from a wheel."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for root in PROJECT:
        for init in (REPO / root).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO).parts
            found.add(".".join(parts[1:] if parts[0] in ("function", "step") else parts))
    assert listed == found
