"""Running needs only requirements.txt: a fresh virtual environment holding it (and the checkout, as
`make setup` installs it) runs the embedded default as `make run` does — host, Azurite, the real
function, runner and step, the studio, the looking commands — with no test tool in it.

On b5e30cf `make run` installed requirements-dev.txt, test tooling and all (selenium, pytest, ruff,
pycep…: 707 MB), and there was no requirements file for running alone.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE
from fresh_venv import fresh_venv
from local_host import host_env, stop_azurite, wait_for
from sheetdrop_local.azurite import free_port
from test_quickstart import Output

#: What the test tooling brings; none of it may be needed, or present, to run.
TEST_TOOLS = ("pytest", "ruff", "selenium", "pycep", "openpyxl", "msoffcrypto", "pyxlsb", "polars",
              "adlfs", "pathspec", "httpx")
#: The packages that run on a laptop and in Azure (pipeline/ publishes from the AzureML environments).
RUNTIME_PACKAGES = ("function", "step", "sheetdrop_local")


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("runtime-venv")
    python = fresh_venv(env_dir, REPO / "requirements.txt")
    # The checkout, as `make setup` installs it: editable, its own dependencies left to the file above.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
                    "--ignore-installed", "--prefix", str(env_dir), "--no-deps", "-e", str(REPO)], check=True)
    return python


def imported_names() -> set[str]:
    """Every top-level name the runtime packages import, wherever in a module (lazy imports too)."""
    names = set()
    for folder in RUNTIME_PACKAGES:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def test_every_import_of_the_runtime_resolves_without_the_test_tools(python: Path) -> None:
    script = ("import importlib.util, sys; names = sys.argv[1:]; "
              "print(' '.join(n for n in names if importlib.util.find_spec(n) is None))")
    # The step's contexts for AzureML import the SDK that AzureML's image holds (pipeline/build.py, conda.yml).
    wanted = sorted(imported_names() - {"__future__", "azureml", "mlflow"})
    missing = subprocess.run([str(python), "-c", script, *wanted], capture_output=True, text=True, check=True)
    # TYPE_CHECKING-only names would show here too; there are none the runtime set lacks.
    assert missing.stdout.split() == [], f"imported but not in requirements.txt: {missing.stdout}"
    present = subprocess.run([str(python), "-c", script, *TEST_TOOLS], capture_output=True, text=True, check=True)
    assert sorted(present.stdout.split()) == sorted(TEST_TOOLS), "a test tool came with requirements.txt"


def test_the_embedded_default_runs_on_requirements_txt_alone(python: Path, tmp_path: Path) -> None:
    env, settings = host_env(tmp_path / "state")
    env["SHEETDROP_UI_PORT"] = str(free_port())
    sheetdrop = [str(python), "-m", "sheetdrop_local.cli"]
    host = subprocess.Popen([*sheetdrop, "host", "--azurite", "--ui", "--drop", str(SAMPLE), "--drop-into", "sales"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    out = Output(host)
    try:
        wait_for(lambda: "watching for new workbooks" in out.text or host.poll() is not None, 180, "the host")
        assert host.poll() is None, out.text
        assert "sales_orders:1, sales_products:1, sales_targets:1" in out.text, out.text
        studio = f"http://127.0.0.1:{env['SHEETDROP_UI_PORT']}"
        for path in ("/runs", "/runs/latest", "/datasets/sales_orders/1"):
            with urllib.request.urlopen(studio + path, timeout=10) as page:
                assert page.status == 200, path
        for command in (["runs"], ["runs", "show", "latest"], ["datasets"], ["show", "sales_orders:1", "--head", "2"],
                        ["convert", str(SAMPLE), str(tmp_path / "out")], ["backfill", "--dry-run"],
                        ["rerun", "latest", "--dry-run"], ["smoke", "--help"]):
            proc = subprocess.run([*sheetdrop, *command], cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=120, check=False)
            assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
    finally:
        if host.poll() is None:
            os.killpg(host.pid, signal.SIGINT)
        host.wait(60)
        stop_azurite(settings)
