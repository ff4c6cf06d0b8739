"""The step script as AzureML runs it: a real subprocess, the mount layout, the contract's argv."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE
from sheetdrop_contract import contract
from sheetdrop_local.emulations.azureml import step_mounts
from sheetdrop_local.mounts import MOUNT_LAYOUTS, MountLayout

SOURCE = contract.source_tags("input", "sales/q3.xlsx", '"0x1"')


@pytest.mark.parametrize(("reference", "expected"), [
    (None, "azureml/step-1/extracted"),
    ({"dataStoreName": "ws", "pathOnDataStore": "azureml/step-1/extracted"}, "azureml/step-1/extracted"),
    ({"dataStoreName": "ws", "pathOnDataStore": "/azureml/step-1/extracted/"}, "azureml/step-1/extracted"),
])
def test_the_output_path_comes_from_the_run(reference: dict[str, str] | None, expected: str) -> None:
    references = {"extracted": reference} if reference else {}
    assert contract.resolve_output(references, "extracted", "step-1", "ws") == expected


def run_step(snapshot: Path, tmp_path: Path, workbook: Path, dataset: str = "sales",
             datastore: str = "workspaceblobstore", local_run: bool = True, extra_env: dict[str, str] | None = None,
             layout: MountLayout = "common-runtime", argument_datastore: str | None = None, read_options: str = "{}",
             ) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """The step as the local runner starts it: mounts in ``layout``, the run's definition in run.json."""
    step_run = str(uuid.uuid4())
    mounts = step_mounts(layout, tmp_path, step_run, "sheetdrop_input", f"sales/{workbook.name}", datastore)
    mounts.input_file.parent.mkdir(parents=True)
    mounts.input_file.write_bytes(workbook.read_bytes())
    outbox = tmp_path / "outbox.json"
    env = {"PATH": "/usr/bin:/bin", **mounts.env, **(extra_env or {})}
    if local_run:
        run_file = tmp_path / "run.json"
        run_file.write_text(json.dumps({
            "run_id": "run-1", "step_run_id": step_run, "outbox": str(outbox),
            "runDefinition": {"dataReferences": {"extracted": {
                "dataStoreName": datastore, "pathOnDataStore": contract.output_relative_path(step_run)}}}}))
        env["SHEETDROP_LOCAL_RUN"] = str(run_file)
    argv = [str(a) for a in contract.step_arguments(
        str(mounts.input_file), str(mounts.output_dir), argument_datastore or datastore, dataset,
        contract.source_version(**{k.removeprefix("source_"): v for k, v in SOURCE.items()}), read_options)]
    proc = subprocess.run([sys.executable, str(snapshot / contract.SCRIPT_NAME), *argv],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    return proc, mounts.output_dir, outbox


@pytest.mark.parametrize("layout", MOUNT_LAYOUTS)
def test_step_creates_its_output_dir_writes_parquet_and_reports_registrations(step_snapshot: Path, tmp_path: Path,
                                                                             layout: MountLayout) -> None:
    proc, output, outbox = run_step(step_snapshot, tmp_path, SAMPLE, layout=layout)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in output.iterdir()) == ["orders.parquet", "products.parquet", "targets.parquet"]
    orders = pq.read_table(output / "orders.parquet")
    assert orders.num_rows == 240
    result = json.loads(outbox.read_text())
    step_run = json.loads((tmp_path / "run.json").read_text())["step_run_id"]
    regs = {r["name"]: r for r in result["registrations"]}
    assert set(regs) == {"sales_orders", "sales_products", "sales_targets"}
    # The same datastore path whatever the mount layout: from the run, not from the mount path.
    assert regs["sales_orders"]["relative_path"] == f"azureml/{step_run}/extracted/orders.parquet"
    assert regs["sales_orders"]["datastore"] == "workspaceblobstore"
    assert regs["sales_orders"]["tags"] | {} == {
        "source_container": "input", "source_blob": "sales/q3.xlsx", "source_etag": '"0x1"', "run_id": "run-1",
        "sheet": "Orders", "rows": "240", "columns": "8",
        "converter_version": regs["sales_orders"]["tags"]["converter_version"], "dataset_base": "sales",
        "schema": json.dumps({"Order_ID": "int64", "Order_date": "timestamp", "Region": "string", "SKU": "string",
                              "Quantity": "int64", "Unit_price": "float64", "Paid": "bool", "Notes": "string"}),
        "schema_change": "first version",
    }
    metrics = result["metrics"]
    assert metrics["rows"] == 250 and metrics["sheets"] == 3 and metrics["null_cells"] == 217
    types = json.loads(metrics["orders.parquet:column_types"])
    assert types["Order_ID"] == "int64" and types["Order_date"] == "timestamp" and types["Paid"] == "bool"
    assert json.loads(metrics["targets.parquet:column_types"])["September"] == "string"


def test_the_common_runtime_mount_has_no_datastore_in_its_path(step_snapshot: Path, tmp_path: Path) -> None:
    _, output, _ = run_step(step_snapshot, tmp_path, SAMPLE)
    assert "mounts" not in output.parts and "workspaceblobstore" not in output.parts
    assert output.parts[-4:] == ("cap", "data-capability", "wd", "extracted")


def test_step_outside_any_run_converts_and_registers_nothing(step_snapshot: Path, tmp_path: Path) -> None:
    proc, output, outbox = run_step(step_snapshot, tmp_path, SAMPLE, local_run=False)
    assert proc.returncode == 0, proc.stderr
    assert "not registered" in proc.stdout
    assert (output / "products.parquet").exists() and not outbox.exists()


def test_step_with_a_wrong_datastore_name_fails_clearly(step_snapshot: Path, tmp_path: Path) -> None:
    proc, _, outbox = run_step(step_snapshot, tmp_path, SAMPLE, argument_datastore="otherstore")
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: output-path: the run definition puts output 'extracted' on datastore 'workspaceblobstore', but "
        "the step was given --output_datastore otherstore")
    assert not outbox.exists()


def test_a_bad_source_version_is_an_argument_error(step_snapshot: Path, tmp_path: Path) -> None:
    argv = [str(a) for a in contract.step_arguments("in.xlsx", str(tmp_path / "out"), "ws", "x", "not json", "{}")]
    proc = subprocess.run([sys.executable, str(step_snapshot / contract.SCRIPT_NAME), *argv],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 3
    assert proc.stderr.strip() == "error: arguments: --source_version is not JSON: 'not json'"


def test_step_rejects_a_file_that_is_not_a_workbook(step_snapshot: Path, tmp_path: Path) -> None:
    fake = tmp_path / "upload" / "prices.xlsx"
    fake.parent.mkdir()
    fake.write_text("sku,price\nA,1\n")
    proc, output, outbox = run_step(step_snapshot, tmp_path, fake)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: not-a-workbook: ")
    assert not outbox.exists()
    assert not any(output.glob("*.parquet"))


def test_step_limits_are_settings_and_a_bad_one_is_named(step_snapshot: Path, tmp_path: Path) -> None:
    proc, output, outbox = run_step(step_snapshot, tmp_path / "a", SAMPLE, extra_env={"SHEETDROP_MAX_CELLS": "500"})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: too-large: ")
    assert not outbox.exists() and not any(output.glob("*.parquet"))
    proc, _, _ = run_step(step_snapshot, tmp_path / "b", SAMPLE, extra_env={"SHEETDROP_MAX_FILE_MB": "lots"})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: settings: SHEETDROP_MAX_FILE_MB='lots' is not a number (largest workbook accepted, MiB)")


def test_every_step_setting_in_the_contract_reaches_the_converter() -> None:
    from sheetdrop_step.converter import Limits, options_from_env

    assert options_from_env({}) == {"include_hidden": False, "limits": Limits()}
    changed = options_from_env({"SHEETDROP_INCLUDE_HIDDEN": "yes", "SHEETDROP_MAX_FILE_MB": "2",
                                "SHEETDROP_MAX_CELLS": "1000", "SHEETDROP_READER_MEMORY_MB": "512",
                                "SHEETDROP_READER_TIMEOUT_S": "30"})
    assert changed == {"include_hidden": True, "limits": Limits(
        max_file_bytes=2 * 1024**2, max_cells=1000, max_memory_bytes=512 * 1024**2, timeout_seconds=30.0)}
    assert set(contract.STEP_SETTING_NAMES) == {"SHEETDROP_INCLUDE_HIDDEN", "SHEETDROP_MAX_FILE_MB",
                                                "SHEETDROP_MAX_CELLS", "SHEETDROP_READER_MEMORY_MB",
                                                "SHEETDROP_READER_TIMEOUT_S"}
