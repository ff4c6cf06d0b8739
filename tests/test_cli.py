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


# What a newcomer's mistakes get (issue 26). On b5e30cf: `--as ../x.xlsx` was a 30-line traceback,
# `--as /abs/x.xlsx` made the blob `/abs/x.xlsx`, `--as folder/` a blob named `folder/`; `show
# name:0` said the dataset did not exist; `--head -1` printed every row and `runs --limit 0` printed
# `(none)`, both exiting 0; `convert` exited 2 for an encrypted workbook where `drop --wait` exits 1;
# `drop` of a bad options file uploaded it; `drop` and `host` with nothing listening took 21-24 s.


def input_blobs(settings: LocalSettings) -> list[str]:
    from sheetdrop.storage import blob_service

    container = blob_service(settings.storage).get_container_client(settings.input_container)
    return sorted(container.list_blob_names()) if container.exists() else []


@pytest.mark.parametrize("name", ["../x.xlsx", "/abs/x.xlsx", "sales/../x.xlsx", "sales//x.xlsx", "./x.xlsx"])
def test_as_outside_the_container_is_one_usage_line(settings: LocalSettings, name: str) -> None:
    proc = sheetdrop("drop", str(SAMPLE), "--as", name)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (f"error: usage: --as {name!r}: a blob name inside the input container, like sales/q3.xlsx "
                           "or sales/ (no leading /, no empty, . or .. folder)\n")
    assert input_blobs(settings) == []


def test_as_ending_in_a_slash_keeps_the_file_name(settings: LocalSettings) -> None:
    proc = sheetdrop("drop", str(SAMPLE), "--as", "sales/2026/")
    assert proc.returncode == 0, proc.stderr
    assert input_blobs(settings) == [f"sales/2026/{SAMPLE.name}"]


def test_dropping_a_bad_options_file_names_every_mistake_and_uploads_nothing(settings: LocalSettings,
                                                                             tmp_path: Path) -> None:
    bad = tmp_path / "sheetdrop.json"
    bad.write_text('{"header_rows": 1, "mixed_columns": "textual", "footr": {}}')
    proc = sheetdrop("drop", str(bad), "--as", "sales/sheetdrop.json")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == ("error: options: sales/sheetdrop.json: footr: unknown key, did you mean footer?; "
                           "mixed_columns: 'textual' is not one of text, rescue; nothing was uploaded\n")
    assert input_blobs(settings) == []
    bad.write_text('{"header_rows": 1, "mixed_columns": "text", "footer": {}}')
    assert sheetdrop("drop", str(bad), "--as", "sales/sheetdrop.json").returncode == 0
    assert input_blobs(settings) == ["sales/sheetdrop.json"]


@pytest.mark.parametrize(("args", "message"), [
    (["show", "sales", "--head", "-1"], "argument --head: a whole number, 0 or more, not '-1'"),
    (["runs", "--limit", "0"], "argument --limit: a whole number above 0, not '0'"),
])
def test_numbers_out_of_range_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    import os

    proc = sheetdrop(*args, env={**os.environ, "SHEETDROP_STATE_DIR": str(tmp_path)})
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines()[-1] == f"sheetdrop {args[0]}: error: {message}"


def test_a_version_that_does_not_exist_says_which_do(settings: LocalSettings, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    conn = db.connect(settings.state_dir)
    with runstore.transaction(conn):
        for _ in range(3):
            registry.register(conn, name="sales_orders", datastore=settings.output_datastore, relative_path="a")
    for version in ("0", "4"):
        assert cli.main(["show", f"sales_orders:{version}"]) == 1
        assert capsys.readouterr().err == \
            f"error: not-found: sales_orders: version {version} does not exist; versions are 1\N{EN DASH}3\n"
    assert cli.main(["show", "sales_order:1"]) == 1
    assert capsys.readouterr().err == "error: not-found: no dataset 'sales_order' (see `sheetdrop datasets`)\n"


def encrypted_workbook(tmp_path: Path) -> Path:
    from msoffcrypto.format.ooxml import OOXMLFile

    locked = tmp_path / "locked.xlsx"
    with open(SAMPLE, "rb") as fin, open(locked, "wb") as fout:
        OOXMLFile(fin).encrypt("secret", fout)
    return locked


def test_a_rejected_workbook_exits_1_from_convert_and_from_drop_wait(settings: LocalSettings, tmp_path: Path) -> None:
    from sheetdrop_local.devhost import DevHost

    locked = encrypted_workbook(tmp_path)
    converted = sheetdrop("convert", str(locked), str(tmp_path / "out"))
    assert converted.returncode == 1 and converted.stderr.startswith("error: encrypted: "), converted.stderr
    with DevHost(settings, poll_interval=0.2).running():
        dropped = sheetdrop("drop", str(locked), "--as", "sales/locked.xlsx", "--wait", "60")
    assert dropped.returncode == 1 and "failed: encrypted: " in dropped.stdout, dropped.stdout + dropped.stderr


@pytest.mark.parametrize("command", [["drop", str(SAMPLE), "--as", "sales/q3.xlsx"], ["host"], ["show", "sales"]])
def test_commands_that_need_storage_say_it_is_unreachable_within_seconds(tmp_path: Path, command: list[str]) -> None:
    import os
    import time

    env = {**os.environ, "SHEETDROP_STATE_DIR": str(tmp_path), "AZURITE_BLOB_PORT": str(free_port()),
           "AZURITE_QUEUE_PORT": str(free_port())}
    for name in ("INPUT_STORAGE", "INPUT_CONTAINER", "CLAIMS_CONTAINER", "LOCAL_OUTPUT_CONTAINER"):
        env.pop(name, None)
    conn = db.connect(tmp_path)
    with runstore.transaction(conn):  # a version to show, whose parquet is in storage
        registry.register(conn, name="sales", datastore="workspaceblobstore", relative_path="azureml/x/a.parquet")
    started = time.monotonic()
    proc = sheetdrop(*command, env=env)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.endswith(f"error: storage-unreachable: nothing answers at http://127.0.0.1:"
                                f"{env['AZURITE_BLOB_PORT']}/devstoreaccount1; is Azurite running? (`make run` "
                                "starts it, or `sheetdrop host --azurite`)\n"), proc.stderr
    assert took < 5, f"{command[0]} took {took:.1f} s"


def test_help_is_plain_text() -> None:
    proc = sheetdrop("--help")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[2] == "sheetdrop: run the embedded default, drop files, watch runs and datasets, " \
                                          "convert, publish."
    assert "``" not in proc.stdout
