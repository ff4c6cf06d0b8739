"""The step script as AzureML runs it: a real subprocess, the output mount's layout, the contract's argv, its
input read from real storage (Azurite) by etag."""

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
from sheetdrop_local.azurite import Azurite
from sheetdrop_local.emulations.azureml import step_mounts
from sheetdrop_local.mounts import MOUNT_LAYOUTS, MountLayout
from sheetdrop_step.contexts.local import LOCAL_RUN_ENV, LOCAL_STORAGE_ENV


@pytest.mark.parametrize(("reference", "expected"), [
    (None, "azureml/step-1/extracted"),
    ({"dataStoreName": "ws", "pathOnDataStore": "azureml/step-1/extracted"}, "azureml/step-1/extracted"),
    ({"dataStoreName": "ws", "pathOnDataStore": "/azureml/step-1/extracted/"}, "azureml/step-1/extracted"),
])
def test_the_output_path_comes_from_the_run(reference: dict[str, str] | None, expected: str) -> None:
    references = {"extracted": reference} if reference else {}
    assert contract.resolve_output(references, "extracted", "step-1", "ws") == expected


def put_blob(azurite: Azurite, data: bytes, name: str = "sales/q3.xlsx") -> dict[str, str]:
    """Upload ``data`` into a fresh container of the session's Azurite; the blob version as the trigger claims it."""
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
        f"input-{uuid.uuid4().hex[:10]}")
    etag = container.get_blob_client(name).upload_blob(data)["etag"]
    return contract.source_tags(container.container_name, name, etag)


def account(azurite: Azurite) -> str:
    return f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1"


def step_argv(input_account: str, output: Path, datastore: str, dataset: str, source: dict[str, str],
              read_options: str = "{}", settings: dict[str, str] | None = None) -> list[str]:
    """The argv as the Function and the publisher write it: every value encoded."""
    encode = contract.encode_argument
    return [str(a) for a in contract.step_arguments(
        encode(input_account), str(output), encode(datastore), encode(dataset),
        encode(contract.source_version(*source.values())), encode(read_options), settings=settings)]


def run_step(snapshot: Path, tmp_path: Path, azurite: Azurite, workbook: Path | dict[str, str],
             dataset: str = "sales", datastore: str = "workspaceblobstore", local_run: bool = True,
             settings: dict[str, str] | None = None, layout: MountLayout = "common-runtime",
             argument_datastore: str | None = None, read_options: str = "{}",
             ) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """The step as the local runner starts it: its output mount in ``layout``, the run's definition in run.json,
    its input in Azurite (``workbook``: a file to upload, or a blob version already there)."""
    source = workbook if isinstance(workbook, dict) else put_blob(azurite, workbook.read_bytes(),
                                                                   f"sales/{workbook.name}")
    step_run = str(uuid.uuid4())
    tmp_path.mkdir(parents=True, exist_ok=True)
    mounts = step_mounts(layout, tmp_path, step_run, datastore)
    outbox = tmp_path / "outbox.json"
    env = {"PATH": "/usr/bin:/bin", **mounts.env}
    if local_run:
        run_file = tmp_path / "run.json"
        run_file.write_text(json.dumps({
            "run_id": "run-1", "step_run_id": step_run, "outbox": str(outbox),
            "runDefinition": {"dataReferences": {"extracted": {
                "dataStoreName": datastore, "pathOnDataStore": contract.output_relative_path(step_run)}}}}))
        env |= {LOCAL_RUN_ENV: str(run_file), LOCAL_STORAGE_ENV: azurite.connection_string}
    else:
        env["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    argv = step_argv(account(azurite), mounts.output_dir, argument_datastore or datastore, dataset, source,
                     read_options, settings)
    proc = subprocess.run([sys.executable, str(snapshot / contract.SCRIPT_NAME), *argv],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    return proc, mounts.output_dir, outbox


@pytest.mark.parametrize("layout", MOUNT_LAYOUTS)
def test_step_creates_its_output_dir_writes_parquet_and_reports_registrations(step_snapshot: Path, tmp_path: Path,
                                                                             azurite: Azurite, layout: MountLayout
                                                                             ) -> None:
    proc, output, outbox = run_step(step_snapshot, tmp_path, azurite, SAMPLE, layout=layout)
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
    assert regs["sales_orders"]["tags"]["source_blob"] == "sales/sales-2026-q3.xlsx"
    assert regs["sales_orders"]["tags"] | {} == {
        **{k: regs["sales_orders"]["tags"][k] for k in contract.SOURCE_TAGS}, "run_id": "run-1",
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


def test_the_common_runtime_mount_has_no_datastore_in_its_path(step_snapshot: Path, tmp_path: Path,
                                                              azurite: Azurite) -> None:
    _, output, _ = run_step(step_snapshot, tmp_path, azurite, SAMPLE)
    assert "mounts" not in output.parts and "workspaceblobstore" not in output.parts
    assert output.parts[-4:] == ("cap", "data-capability", "wd", "extracted")


def test_step_outside_any_run_converts_and_registers_nothing(step_snapshot: Path, tmp_path: Path,
                                                             azurite: Azurite) -> None:
    proc, output, outbox = run_step(step_snapshot, tmp_path, azurite, SAMPLE, local_run=False)
    assert proc.returncode == 0, proc.stderr
    assert "not registered" in proc.stdout
    assert (output / "products.parquet").exists() and not outbox.exists()


def test_a_version_replaced_before_the_step_read_it_is_superseded(step_snapshot: Path, tmp_path: Path,
                                                                   azurite: Azurite) -> None:
    """The step's own check: the blob holds other content (a newer etag) by the time the step reads it."""
    from azure.storage.blob import BlobServiceClient

    claimed = put_blob(azurite, SAMPLE.read_bytes())
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        claimed["source_container"], claimed["source_blob"])
    newer = blob.upload_blob(b"other content", overwrite=True)["etag"]
    proc, output, outbox = run_step(step_snapshot, tmp_path, azurite, claimed)
    assert proc.returncode == 0, proc.stderr
    assert f"superseded: {claimed['source_container']}/sales/q3.xlsx is no longer etag {claimed['source_etag']} " \
           f"but {newer}" in proc.stdout
    assert json.loads(outbox.read_text()) == {"metrics": {}, "registrations": [], "superseded_by_etag": newer}
    assert not any(output.glob("*"))
    # And a deleted one is gone: nothing to convert, nothing registered.
    blob.delete_blob()
    proc, _, outbox = run_step(step_snapshot, tmp_path / "gone", azurite, claimed)
    assert proc.returncode == 2 and "error: input-gone: the blob " in proc.stderr
    assert not outbox.exists()


def test_step_with_a_wrong_datastore_name_fails_clearly(step_snapshot: Path, tmp_path: Path,
                                                        azurite: Azurite) -> None:
    proc, _, outbox = run_step(step_snapshot, tmp_path, azurite, SAMPLE, argument_datastore="otherstore")
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: output-path: the run definition puts output 'extracted' on datastore 'workspaceblobstore', but "
        "the step was given --output_datastore otherstore")
    assert not outbox.exists()


@pytest.mark.parametrize(("value", "error"), [
    (contract.encode_argument("not json"), "error: arguments: --source_version is not JSON: 'not json'"),
    ("{}", "error: arguments: --source_version is not an encoded value (sheetdrop_contract.contract."
           "encode_argument): '{}'"),
    (contract.encode_argument("{}"), "error: arguments: --source_version names no blob version"),
])
def test_a_bad_source_version_is_an_argument_error(step_snapshot: Path, tmp_path: Path, value: str,
                                                   error: str) -> None:
    argv = [str(a) for a in contract.step_arguments("https%3A", str(tmp_path / "out"), "ws", "x", value, "%7B%7D")]
    proc = subprocess.run([sys.executable, str(step_snapshot / contract.SCRIPT_NAME), *argv],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 3
    assert proc.stderr.strip() == error


def test_step_rejects_a_file_that_is_not_a_workbook(step_snapshot: Path, tmp_path: Path, azurite: Azurite) -> None:
    fake = tmp_path / "upload" / "prices.xlsx"
    fake.parent.mkdir()
    fake.write_text("sku,price\nA,1\n")
    proc, output, outbox = run_step(step_snapshot, tmp_path, azurite, fake)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: not-a-workbook: ")
    assert not outbox.exists()
    assert not any(output.glob("*.parquet"))


def test_step_limits_are_settings_on_its_command_line_and_a_bad_one_is_named(
        step_snapshot: Path, tmp_path: Path, azurite: Azurite) -> None:
    proc, output, outbox = run_step(step_snapshot, tmp_path / "a", azurite, SAMPLE,
                                    settings={"SHEETDROP_MAX_CELLS": "500"})
    assert proc.returncode != 0
    assert '"SHEETDROP_MAX_CELLS": 500' in proc.stdout  # the settings line of its log
    assert proc.stderr.strip().splitlines()[-1].startswith("error: too-large: ")
    assert not outbox.exists() and not any(output.glob("*.parquet"))
    proc, _, _ = run_step(step_snapshot, tmp_path / "b", azurite, SAMPLE, settings={"SHEETDROP_MAX_FILE_MB": "lots"})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: settings: SHEETDROP_MAX_FILE_MB='lots' is not a number (largest workbook accepted, MiB)")
    # One transport: a setting in the step's environment is not a setting.
    argv = step_argv(account(azurite), tmp_path / "c", "workspaceblobstore", "sales", put_blob(
        azurite, SAMPLE.read_bytes()))
    env = {"PATH": "/usr/bin:/bin", "SHEETDROP_MAX_CELLS": "500", "AZURE_STORAGE_CONNECTION_STRING":
           azurite.connection_string}
    proc = subprocess.run([sys.executable, str(step_snapshot / contract.SCRIPT_NAME), *argv], capture_output=True,
                          text=True, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0 and '"SHEETDROP_MAX_CELLS": 60000000' in proc.stdout, proc.stderr


def test_an_unknown_setting_is_named(step_snapshot: Path, tmp_path: Path) -> None:
    argv = [str(a) for a in contract.step_arguments("h", str(tmp_path), "ws", "x", "%7B%7D", "%7B%7D")]
    proc = subprocess.run([sys.executable, str(step_snapshot / contract.SCRIPT_NAME), *argv, "--setting",
                           "SHEETDROP_MAX_CELS=5"], capture_output=True, text=True, check=False)
    assert proc.returncode == 3
    assert proc.stderr.strip().startswith("error: settings: --setting 'SHEETDROP_MAX_CELS=5' is not NAME=VALUE")


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
