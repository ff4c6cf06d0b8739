"""The step script as AzureML runs it: a real subprocess, the mount layout, the contract's argv."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, SAMPLE
from extract import MountPathError, datastore_relative_path

from step_scripts import contract


@pytest.mark.parametrize(
    ("mount", "datastore", "expected"),
    [
        ("/mnt/batch/tasks/shared/LS_root/jobs/ws/azureml/abc/mounts/workspaceblobstore/azureml/1f2e/extracted",
         "workspaceblobstore", "azureml/1f2e/extracted"),
        ("/tmp/r/mounts/out_store/azureml/u-1/extracted", "out_store", "azureml/u-1/extracted"),
        # The datastore name decides, not the position: a different depth gives the same answer.
        ("/a/b/c/d/e/mounts/ds/azureml/u/extracted", "ds", "azureml/u/extracted"),
    ],
)
def test_datastore_relative_path(mount: str, datastore: str, expected: str) -> None:
    assert datastore_relative_path(mount, datastore) == expected


@pytest.mark.parametrize(
    ("mount", "datastore"),
    [
        ("/tmp/r/mounts/other_store/azureml/u/extracted", "workspaceblobstore"),
        ("/tmp/r/workspaceblobstore/azureml/u/extracted", "workspaceblobstore"),
        ("/tmp/r/mounts/workspaceblobstore", "workspaceblobstore"),
    ],
)
def test_datastore_relative_path_without_the_datastore_segment_is_a_clear_error(mount: str, datastore: str) -> None:
    with pytest.raises(MountPathError, match=f"mounts/{datastore}/"):
        datastore_relative_path(mount, datastore)


def run_step(tmp_path: Path, workbook: Path, dataset: str = "sales", datastore: str = "workspaceblobstore",
             local_run: bool = True, extra_env: dict[str, str] | None = None,
             ) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    input_path = tmp_path / "mounts" / "sheetdrop_input" / "sales" / workbook.name
    input_path.parent.mkdir(parents=True)
    input_path.write_bytes(workbook.read_bytes())
    step_run = str(uuid.uuid4())
    output = tmp_path / "mounts" / datastore / contract.output_relative_path(step_run)
    outbox = tmp_path / "outbox.json"
    env = {"PATH": "/usr/bin:/bin", **(extra_env or {})}
    if local_run:
        run_file = tmp_path / "run.json"
        run_file.write_text(json.dumps({
            "run_id": "run-1", "tags": {"source_container": "input", "source_blob": "sales/q3.xlsx",
                                        "source_etag": '"0x1"'}, "outbox": str(outbox)}))
        env["SHEETDROP_LOCAL_RUN"] = str(run_file)
    argv = [str(a) for a in contract.step_arguments(str(input_path), str(output), datastore, dataset)]
    proc = subprocess.run([sys.executable, str(REPO / "step_scripts" / "extract.py"), *argv],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    return proc, output, outbox


def test_step_creates_its_output_dir_writes_parquet_and_reports_registrations(tmp_path: Path) -> None:
    proc, output, outbox = run_step(tmp_path, SAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in output.iterdir()) == ["orders.parquet", "products.parquet", "targets.parquet"]
    orders = pq.read_table(output / "orders.parquet")
    assert orders.num_rows == 240
    result = json.loads(outbox.read_text())
    relative = output.relative_to(tmp_path / "mounts" / "workspaceblobstore").as_posix()
    regs = {r["name"]: r for r in result["registrations"]}
    assert set(regs) == {"sales_orders", "sales_products", "sales_targets"}
    assert regs["sales_orders"]["relative_path"] == f"{relative}/orders.parquet"
    assert regs["sales_orders"]["datastore"] == "workspaceblobstore"
    assert regs["sales_orders"]["tags"] | {} == {
        "source_container": "input", "source_blob": "sales/q3.xlsx", "source_etag": '"0x1"', "run_id": "run-1",
        "sheet": "Orders", "rows": "240", "columns": "8",
        "converter_version": regs["sales_orders"]["tags"]["converter_version"],
    }
    metrics = result["metrics"]
    assert metrics["rows"] == 250 and metrics["sheets"] == 3 and metrics["null_cells"] == 217
    types = json.loads(metrics["orders.parquet:column_types"])
    assert types["Order_ID"] == "int64" and types["Order_date"] == "timestamp" and types["Paid"] == "bool"
    assert json.loads(metrics["targets.parquet:column_types"])["September"] == "string"


def test_step_outside_any_run_converts_and_registers_nothing(tmp_path: Path) -> None:
    proc, output, outbox = run_step(tmp_path, SAMPLE, local_run=False)
    assert proc.returncode == 0, proc.stderr
    assert "not registered" in proc.stdout
    assert (output / "products.parquet").exists() and not outbox.exists()


def test_step_with_a_wrong_datastore_name_fails_clearly(tmp_path: Path) -> None:
    input_path = tmp_path / "in.xlsx"
    input_path.write_bytes(SAMPLE.read_bytes())
    output = tmp_path / "mounts" / "workspaceblobstore" / "azureml" / "u" / "extracted"
    argv = [str(a) for a in contract.step_arguments(str(input_path), str(output), "otherstore", "x")]
    proc = subprocess.run([sys.executable, str(REPO / "step_scripts" / "extract.py"), *argv],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "mounts/otherstore/" in proc.stderr.strip().splitlines()[-1]


def test_step_rejects_a_file_that_is_not_a_workbook(tmp_path: Path) -> None:
    fake = tmp_path / "upload" / "prices.xlsx"
    fake.parent.mkdir()
    fake.write_text("sku,price\nA,1\n")
    proc, output, outbox = run_step(tmp_path, fake)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: not-a-workbook: ")
    assert not outbox.exists()
    assert not any(output.glob("*.parquet"))


def test_step_limits_are_settings_and_a_bad_one_is_named(tmp_path: Path) -> None:
    proc, output, outbox = run_step(tmp_path / "a", SAMPLE, extra_env={"SHEETDROP_MAX_CELLS": "500"})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: too-large: ")
    assert not outbox.exists() and not any(output.glob("*.parquet"))
    proc, _, _ = run_step(tmp_path / "b", SAMPLE, extra_env={"SHEETDROP_MAX_FILE_MB": "lots"})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: settings: SHEETDROP_MAX_FILE_MB='lots' is not a number (largest workbook accepted, MiB)")


def test_every_step_setting_in_the_contract_reaches_the_converter() -> None:
    import convert
    from convert_guard import Limits

    assert convert.options_from_env({}) == {"include_hidden": False, "limits": Limits()}
    changed = convert.options_from_env({"SHEETDROP_INCLUDE_HIDDEN": "yes", "SHEETDROP_MAX_FILE_MB": "2",
                                        "SHEETDROP_MAX_CELLS": "1000", "SHEETDROP_READER_MEMORY_MB": "512",
                                        "SHEETDROP_READER_TIMEOUT_S": "30"})
    assert changed == {"include_hidden": True, "limits": Limits(
        max_file_bytes=2 * 1024**2, max_cells=1000, max_memory_bytes=512 * 1024**2, timeout_seconds=30.0)}
    assert set(contract.STEP_SETTING_NAMES) == {"SHEETDROP_INCLUDE_HIDDEN", "SHEETDROP_MAX_FILE_MB",
                                                "SHEETDROP_MAX_CELLS", "SHEETDROP_READER_MEMORY_MB",
                                                "SHEETDROP_READER_TIMEOUT_S"}
