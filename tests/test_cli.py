"""The sheetdrop command as a person runs it: a real subprocess where exit codes and output matter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE
from sheetdrop_local import cli, db, registry, runstore
from sheetdrop_local.azurite import free_port
from sheetdrop_local.settings import LocalSettings


def sheetdrop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", *args], capture_output=True, text=True,
                          env=env, check=False, timeout=120)


def test_convert_writes_one_parquet_per_sheet(tmp_path: Path) -> None:
    proc = sheetdrop("convert", str(SAMPLE), str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "orders.parquet", "products.parquet", "targets.parquet"]
    assert pq.read_table(tmp_path / "out" / "products.parquet").num_rows == 6


def test_convert_applies_a_folders_read_options(tmp_path: Path) -> None:
    finance = SAMPLE.parent / "finance"
    proc = sheetdrop("convert", str(finance / "q3-2026-report.xlsx"), str(tmp_path / "out"),
                     "--options", str(finance / "sheetdrop.json"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.parquet"]  # Notes excluded
    table = pq.read_table(tmp_path / "out" / "report.parquet")
    assert table.schema.names == ["Region", "Rep", "Units_sold_Jul", "Units_sold_Aug", "Units_sold_Sep", "Unit_price",
                                  "Last_order", "_rescued_data"]
    assert table.num_rows == 12  # the totals row dropped
    assert [v for v in table.column("_rescued_data").to_pylist() if v] == ['{"Unit_price": "n/a"}']
    assert proc.stderr.splitlines()[-1] == ("warning: sheet 'Report': column Unit_price (F): 1 cell did not fit "
                                            "float64 and is in _rescued_data (F13 'n/a')")


def test_convert_names_a_bad_options_file(tmp_path: Path) -> None:
    bad = tmp_path / "sheetdrop.json"
    bad.write_text('{"header_rows": "two"}')
    proc = sheetdrop("convert", str(SAMPLE), str(tmp_path / "out"), "--options", str(bad))
    assert (proc.returncode, proc.stderr) == (2, f"error: options: {bad}: header_rows: a whole number from 0 (no "
                                                 "header) to 10 (rows joined into one name)\n")
    assert not (tmp_path / "out").exists()


def test_convert_rejects_with_exactly_one_error_line(tmp_path: Path) -> None:
    fake = tmp_path / "prices.xlsx"
    fake.write_text("sku,price\nA,1\n")
    proc = sheetdrop("convert", str(fake), str(tmp_path / "out"))
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: not-a-workbook: ")
    assert not (tmp_path / "out").exists()


def test_runs_lists_local_runs_even_when_storage_is_down(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from sheetdrop.settings import get_settings

    monkeypatch.setenv("SHEETDROP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AZURITE_BLOB_PORT", str(free_port()))  # nothing listens there
    monkeypatch.delenv("INPUT_STORAGE", raising=False)
    get_settings.cache_clear()
    try:
        assert cli.main(["runs"]) == 0
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    assert out.strip() == "(none)"
    assert "storage is unreachable" in err


def test_show_with_a_bad_version_is_a_usage_error(tmp_path: Path) -> None:
    import os

    proc = sheetdrop("show", "sales_orders:newest", env={**os.environ, "SHEETDROP_STATE_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == \
        "error: usage: NAME[:VERSION|:latest] with a version number, not 'sales_orders:newest'"


def test_show_when_the_parquet_is_gone_is_one_line(settings: LocalSettings, capsys: pytest.CaptureFixture[str]) -> None:
    conn = db.connect(settings.state_dir)
    with runstore.transaction(conn):
        registry.register(conn, name="sales", datastore=settings.output_datastore,
                          relative_path="azureml/gone/extracted/orders.parquet")
    assert cli.main(["show", "sales:1"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: not-found: sales:1 is registered, but its parquet "
                              f"{settings.local_output_container}/azureml/gone/extracted/orders.parquet is not in "
                              "storage\n")


def test_publish_hands_everything_to_the_azureml_environment() -> None:
    from sheetdrop_local import REPO

    if not (REPO / ".venv-aml" / "bin" / "python").exists():
        pytest.skip(".venv-aml is built by `make setup-aml` (make test builds it before this suite)")
    proc = sheetdrop("publish", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m pipeline.publish")
    assert "--endpoint-name" in proc.stdout


def test_publish_v2_hands_everything_to_the_v2_environment() -> None:
    from sheetdrop_local import REPO

    if not (REPO / ".venv-aml2" / "bin" / "python").exists():
        pytest.skip(".venv-aml2 is built by `make setup-aml2` (make test builds it before this suite)")
    proc = sheetdrop("publish", "--v2", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m pipeline.v2.publish")
    assert "--endpoint-name" in proc.stdout and "--compute" in proc.stdout
    # Without a workspace it stops before asking Azure for anything, with one line.
    env_free = sheetdrop("publish", "--v2", "--subscription-id", "", "--resource-group", "", "--workspace", "")
    assert env_free.returncode == 2 and env_free.stderr.startswith("error: no workspace: set --subscription-id")


def test_publish_picks_the_publisher_by_backend_name() -> None:
    from sheetdrop_local import REPO

    if not (REPO / ".venv-aml2" / "bin" / "python").exists():
        pytest.skip(".venv-aml2 is built by `make setup-aml2` (make test builds it before this suite)")
    named = sheetdrop("publish", "--backend", "azureml-v2", "--help")
    assert named.returncode == 0 and named.stdout.startswith("usage: python -m pipeline.v2.publish")
    unknown = sheetdrop("publish", "--backend", "local", "--help")
    assert (unknown.returncode, unknown.stderr) == (2, "error: no publisher for backend 'local': one of azureml, "
                                                       "azureml-v2\n")
