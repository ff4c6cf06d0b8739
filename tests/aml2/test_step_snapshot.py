"""The step's snapshot as SDK v2 uploads a component's ``code:`` folder, then run on the step's own
requirements alone.

azure-ai-ml's ``upload_directory`` enumerates ``get_upload_files_from_folder(folder,
ignore_file=get_ignore_file(folder))`` (``_utils/_asset_utils.py``: the folder's .amlignore, else its
.gitignore, "in the root directory"); those files are copied out and the entry script converts a sample
in a fresh virtual environment holding step/requirements.txt only, as AzureML builds the step's image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from azure.ai.ml._utils._asset_utils import get_ignore_file, get_upload_files_from_folder

from fresh_venv import fresh_venv
from pipeline import snapshot
from sheetdrop_contract import contract
from sheetdrop_local.azurite import Azurite

SAMPLE = snapshot.REPO / "samples" / "sales-2026-q3.xlsx"


def uploaded(folder: Path) -> dict[str, Path]:
    """Remote name -> local file, as upload_directory computes them."""
    pairs = get_upload_files_from_folder(folder, prefix="", ignore_file=get_ignore_file(folder))
    return {remote: Path(local) for local, remote in pairs}


@pytest.fixture(scope="module")
def step_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with step/requirements.txt installed and nothing else."""
    return fresh_venv(tmp_path_factory.mktemp("step-venv"), snapshot.STEP_DIR / "requirements.txt")


def test_v2_uploads_the_assembled_snapshot_and_nothing_a_run_left(tmp_path: Path) -> None:
    folder = snapshot.assemble(tmp_path / "snapshot")
    (folder / "sheetdrop_contract" / "__pycache__").mkdir()
    (folder / "sheetdrop_contract" / "__pycache__" / "contract.cpython-311.pyc").write_bytes(b"\0")
    assert sorted(uploaded(folder)) == sorted(name for _, name in snapshot.files())


def test_what_v2_uploads_converts_on_the_step_requirements_alone(tmp_path: Path, step_python: Path,
                                                                azurite: Azurite) -> None:
    from azure.storage.blob import BlobServiceClient

    folder = snapshot.assemble(tmp_path / "snapshot")
    code = tmp_path / "code"  # only what the upload would carry
    for name, local in uploaded(folder).items():
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, code / name)
    out = tmp_path / "extracted"
    container = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
        f"input-{uuid.uuid4().hex[:10]}")
    etag = container.get_blob_client("sales/q3.xlsx").upload_blob(SAMPLE.read_bytes())["etag"]
    encode = contract.encode_argument
    argv = [str(a) for a in contract.step_arguments(
        encode(f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1"), str(out), "workspaceblobstore", "sales",
        encode(contract.source_version(container.container_name, "sales/q3.xlsx", etag)), encode("{}"))]
    # Outside any run the step reads the blob version (with the account key run by hand, from the Azure CLI's
    # variable), converts and says what it would register (its standalone context).
    done = subprocess.run([str(step_python), str(code / contract.SCRIPT_NAME), *argv], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300, env={
                              "PATH": "/usr/bin:/bin", "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.parquet")) == ["orders.parquet", "products.parquet", "targets.parquet"]
    read = subprocess.run([str(step_python), "-I", "-c", "import json, sys, pyarrow.parquet as pq; "
                           "print(json.dumps(pq.read_table(sys.argv[1]).num_rows))", str(out / "orders.parquet")],
                          capture_output=True, text=True, check=True)
    assert json.loads(read.stdout) == 240
    assert "not registered (no AzureML run, no local runner): sales_orders" in done.stdout
