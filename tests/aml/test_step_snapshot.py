"""The step's snapshot as SDK v1 uploads it: publishing hands pipeline.snapshot's folder to
PythonScriptStep(source_directory=...), and azureml-core's SnapshotsClient.create_snapshot decides what
leaves with ``get_project_ignore_file(folder)`` (the folder's own .amlignore, else .gitignore) and
``create_merkletree(folder, ignore_file.is_file_excluded)``. The same two calls here give the files the
step would find in AzureML; tests/aml2/test_step_snapshot.py runs those files in a fresh environment.
"""

from __future__ import annotations

from pathlib import Path

from azureml._base_sdk_common.merkle_tree import create_merkletree
from azureml._project.ignore_file import get_project_ignore_file

from pipeline import snapshot


def uploaded(folder: Path) -> list[str]:
    tree = create_merkletree(str(folder), get_project_ignore_file(str(folder)).is_file_excluded)
    names: list[str] = []

    def walk(node: object, prefix: str) -> None:
        for child in node.children:  # type: ignore[attr-defined]
            path = f"{prefix}{child.name}"
            if child.is_file():
                names.append(path)
            else:
                walk(child, f"{path}/")

    walk(tree, "")
    return sorted(names)


def test_v1_uploads_the_assembled_snapshot_and_nothing_a_run_left(tmp_path: Path) -> None:
    folder = snapshot.assemble(tmp_path / "snapshot")
    # What running the step or its tests leaves behind, as in a developer's checkout.
    (folder / "sheetdrop_step" / "__pycache__").mkdir()
    (folder / "sheetdrop_step" / "__pycache__" / "extract.cpython-311.pyc").write_bytes(b"\0")
    names = uploaded(folder)
    assert names == sorted(name for _, name in snapshot.files())
    assert {"extract.py", "requirements.txt", "sheetdrop_step/extract.py", "sheetdrop_step/converter/__init__.py",
            "sheetdrop_contract/contract.py", "sheetdrop_contract/read_options.py"} <= set(names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
