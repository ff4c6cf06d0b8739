"""The local runner's v2 mode (LOCAL_STEP_API=azureml-v2): the step runs with a v2 command job's output mount,
is told its output's place on its command line (as the invocation chooses it), and registers the same parquet
as the v1 step for the same workbook. Real Azurite, the real function, the real step in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SAMPLE
from sheetdrop.settings import SettingsError
from sheetdrop.storage import blob_service
from sheetdrop_local import backend, db, registry
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.settings import LocalSettings, load_local_settings
from sheetdrop_step.schema_changes import CHANGE_TAG
from test_end_to_end import run_all, upload

#: Tags that differ between two runs of the same workbook by design.
PER_RUN = {"run_id"}


def registered(settings: LocalSettings, blob: str) -> tuple[dict[str, dict[str, str]], dict[str, bytes], Path]:
    upload(settings, blob, SAMPLE.read_bytes())
    assert DevHost(settings).scan_once() == 1
    [run] = run_all(settings)
    assert run.status == "completed", run.error
    service = blob_service(settings.storage).get_container_client(settings.local_output_container)
    conn = db.connect(settings.state_dir)
    versions = [v for v in registry.list_versions(conn) if v.tags["run_id"] == run.run_id]
    assert {v.relative_path for v in versions} == {f"azureml/{run.step_run_id}/extracted/{sheet}.parquet"
                                                   for sheet in ("orders", "products", "targets")}
    tags = {v.name: {k: val for k, val in v.tags.items() if k not in PER_RUN} for v in versions}
    data = {v.name: service.get_blob_client(v.relative_path).download_blob().readall() for v in versions}
    return tags, data, Path(run.log_path or "")


def test_the_v2_step_registers_the_same_parquet_as_the_v1_step(env: dict[str, str]) -> None:
    v1 = load_local_settings({**env, "LOCAL_STEP_API": "azureml"})
    backend.install(v1)
    v1_tags, v1_data, v1_log = registered(v1, "sales/2026-q3.xlsx")

    v2 = load_local_settings({**env, "LOCAL_STEP_API": "azureml-v2"})
    backend.install(v2)
    v2_tags, v2_data, v2_log = registered(v2, "sales/2026-q3.xlsx")

    assert set(v2_data) == {"sales_orders", "sales_products", "sales_targets"}
    assert v2_data == v1_data  # byte for byte: the same converter, the same files
    # Same tags but the blob version (the second upload has its own etag) and what follows from it.
    for name, tags in v2_tags.items():
        assert tags.pop("source_etag") != v1_tags[name].pop("source_etag")
        # The v2 run follows the v1 run's versions: same columns, so "none" after "first version".
        assert (v1_tags[name].pop(CHANGE_TAG), tags.pop(CHANGE_TAG)) == ("first version", "none")
        assert tags == v1_tags[name]

    # The argv the runner started each step with: v2's says where the output goes and which context to use (the
    # component's command line), v1's says neither (its run definition does; it is v1's context by default).
    v2_argv, v1_argv = v2_log.read_text().splitlines()[0], v1_log.read_text().splitlines()[0]
    step_run_v2 = json.loads((v2_log.parent / "run.json").read_text())["step_run_id"]
    assert v2_argv.endswith(f" --output_path azureml/{step_run_v2}/extracted --setting SHEETDROP_JOB_API=v2")
    assert "--output_path" not in v1_argv and "--setting" not in v1_argv
    assert "runDefinition" not in json.loads((v2_log.parent / "run.json").read_text())
    assert "runDefinition" in json.loads((v1_log.parent / "run.json").read_text())


def test_a_bad_step_api_is_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="LOCAL_STEP_API='v3' is not one of azureml, azureml-v2"):
        load_local_settings({**env, "LOCAL_STEP_API": "v3"})
