"""The looking commands (`runs`, `runs show`, `logs`, `datasets`, `show`) on real runs: the sample workbook
and its next quarter through the real function, runner and step on Azurite, a failed run and a
skipped blob. What a person reads is asserted: the rows, the names, the exit codes."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from history import make_history
from sheetdrop_local import cli, db, registry, runstore
from sheetdrop_local.azurite import free_port
from sheetdrop_local.settings import LocalSettings
from sheetdrop_local.textfit import char_width, width


@pytest.fixture
def history(settings: LocalSettings) -> dict[str, runstore.Run]:
    return make_history(settings)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def columns_of(line: str) -> list[str]:
    """A line as a terminal shows it, one entry per column: a wide character fills two."""
    return [part for ch in line for part in ([ch] if char_width(ch) == 1 else [ch, ""] if char_width(ch) else [])]


def rows_of(table: str) -> list[dict[str, str]]:
    """Parse the CLI's fixed-width tables back into rows: columns start, on the screen, where the
    header's words do."""
    lines = [columns_of(line) for line in table.splitlines() if line.strip()]
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    names = "".join(header).split()
    bounds = [*starts[1:], None]
    return [{name.lower(): "".join(line[start:end]).strip()
             for name, start, end in zip(names, starts, bounds, strict=True)} for line in lines[1:]]


def test_runs_names_the_datasets_each_run_made_and_lists_failed_and_skipped(
        settings: LocalSettings, history: dict[str, runstore.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0
    rows = {row["blob"]: row for row in rows_of(out)}
    q3, q4 = history["sales/2026-q3.xlsx"], history["sales/2026-q4.xlsx"]
    blob = f"{settings.input_container}/sales/"
    assert rows[blob + "2026-q4.xlsx"]["run"] == q4.run_id[:8]
    assert rows[blob + "2026-q4.xlsx"]["datasets"] == "sales_orders:2, sales_products:2, sales_targets:2"
    assert rows[blob + "2026-q3.xlsx"]["datasets"] == "sales_orders:1, sales_products:1, sales_targets:1"
    assert rows[blob + "2026-q4.xlsx"]["etag"] == q4.source_etag and rows[blob + "2026-q4.xlsx"]["sheets"] == "3"
    assert rows[blob + "2026-q3.xlsx"]["rows"] == "250" and rows[blob + "2026-q3.xlsx"]["status"] == "completed"
    assert q3.status == "completed"
    # Every dataset the table names exists in the registry.
    conn = db.connect(settings.state_dir)
    for row in rows.values():
        for ref in filter(None, row["datasets"].split(", ")):
            name, _, version = ref.partition(":")
            assert registry.get(conn, name, int(version)).run_id.startswith(row["run"])
    failed = rows[blob + "prices.xlsx"]
    assert failed["status"] == "failed" and failed["reason"].startswith("not-a-workbook: ")
    skipped = rows[blob + "readme.txt"]
    assert (skipped["status"], skipped["run"]) == ("skipped", "-")
    assert skipped["reason"].startswith("not a workbook extension (.txt")

    code, out, _ = run_cli(capsys, "runs", "--status", "skipped")
    assert [row["blob"] for row in rows_of(out)] == [blob + "readme.txt"]
    code, out, _ = run_cli(capsys, "runs", "--dataset", "sales_orders")
    assert [row["blob"] for row in rows_of(out)] == [blob + "2026-q4.xlsx", blob + "2026-q3.xlsx"]
    code, out, _ = run_cli(capsys, "runs", "--dataset", "sales", "--status", "failed")
    assert [row["blob"] for row in rows_of(out)] == [blob + "prices.xlsx"]
    code, out, _ = run_cli(capsys, "runs", "--json")
    listed = {r["source_blob"]: r for r in json.loads(out)}
    assert listed["sales/2026-q4.xlsx"]["datasets"] == ["sales_orders:2", "sales_products:2", "sales_targets:2"]
    assert listed["sales/readme.txt"]["status"] == "skipped" and listed["sales/readme.txt"]["run_id"] is None


def test_tables_fit_the_terminal_and_wide_characters_keep_their_columns(
        settings: LocalSettings, history: dict[str, runstore.Run], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On b5e30cf `datasets` lines passed 300 characters, and a name in CJK characters (two columns
    each on the screen) pushed the rest of its row out of its columns."""
    from history import Q4, deliver_and_run, upload

    upload(settings, "销售/第四季度报告.xlsx", Q4.read_bytes())
    deliver_and_run(settings)
    monkeypatch.setenv("COLUMNS", "400")
    _, out, _ = run_cli(capsys, "runs")
    wide = next(row for row in rows_of(out) if row["blob"].endswith(".xlsx") and "销售" in row["blob"])
    [run] = [r for r in runstore.list_runs(db.connect(settings.state_dir)) if r.source_blob.startswith("销售")]
    assert (wide["blob"], wide["etag"], wide["status"]) == (f"{settings.input_container}/销售/第四季度报告.xlsx",
                                                            run.source_etag, "completed")
    assert wide["datasets"].startswith(f"{run.dataset_name}_orders:1")

    monkeypatch.setenv("COLUMNS", "80")
    for command in (["runs"], ["datasets"], ["runs", "show", history["sales/prices.xlsx"].run_id]):
        _, out, _ = run_cli(capsys, *command)
        assert max(width(line) for line in out.splitlines()) <= 80, (command, out)
    _, out, _ = run_cli(capsys, "runs")
    failed = next(row for row in rows_of(out) if row["status"] == "failed")
    assert failed["reason"].endswith("…") and failed["run"] == history["sales/prices.xlsx"].run_id[:8]
    _, out, _ = run_cli(capsys, "runs", "--json")  # the full text
    assert history["sales/prices.xlsx"].error in [r["error"] for r in json.loads(out)]


def test_runs_show_gives_parameters_sheets_columns_and_outputs(
        settings: LocalSettings, history: dict[str, runstore.Run], capsys: pytest.CaptureFixture[str]) -> None:
    q4 = history["sales/2026-q4.xlsx"]
    code, out, _ = run_cli(capsys, "runs", "show", q4.run_id[:8])
    assert code == 0
    assert out.startswith(f"run {q4.run_id}: completed\n")
    assert f"step run    {q4.step_run_id}" in out
    account = dict(part.split("=", 1) for part in (settings.storage.connection_string or "").split(";") if part)[
        "BlobEndpoint"]
    assert "  dataset_name      sales\n" in out and f"  input_account     {account}\n" in out
    sheets = out.split("\nsheets\n")[1].split("\n\n")[0]
    assert [(r["sheet"], r["dataset"], r["rows"], r["columns"], r["nulls"], r["errors"]) for r in rows_of(sheets)] == [
        ("Orders", "sales_orders:2", "260", "9", "243", "0"), ("Products", "sales_products:2", "7", "4", "0", "0"),
        ("Targets", "sales_targets:2", "4", "5", "0", "0")]
    orders = out.split("\ncolumns of Orders\n")[1].split("\n\n")[0]
    assert {r["name"]: r["type"] for r in rows_of(orders)}["Discount"] == "float64"
    assert "\nskipped sheets\n  'Scratch': empty\n" in out
    outputs = rows_of(out.split("\noutputs (dataset versions)\n")[1])
    assert [r["dataset"] for r in outputs] == ["sales_orders:2", "sales_products:2", "sales_targets:2"]
    assert outputs[0]["path"] == f"{settings.local_output_container}/azureml/{q4.step_run_id}/extracted/orders.parquet"

    code, out, _ = run_cli(capsys, "runs", "show", "latest", "--json")
    detail = json.loads(out)
    assert code == 1 and detail["run"]["status"] == "failed"  # the newest run is the CSV's
    assert detail["run"]["error"].startswith("not-a-workbook: ")

    code, _, err = run_cli(capsys, "runs", "show", "nosuchrun")
    assert code == 1 and err == "error: not-found: no run 'nosuchrun' (see `sheetdrop runs`)\n"


def test_logs_prints_the_step_log_and_fails_for_a_failed_run(
        settings: LocalSettings, history: dict[str, runstore.Run], capsys: pytest.CaptureFixture[str]) -> None:
    q4, bad = history["sales/2026-q4.xlsx"], history["sales/prices.xlsx"]
    code, out, _ = run_cli(capsys, "logs", q4.run_id)
    assert code == 0
    assert out.startswith("$ extract.py --input_account ")
    assert "skipped sheet 'Scratch' of 2026-q4.xlsx: empty\n" in out
    assert "dataset: sales_orders" in out
    code, out, err = run_cli(capsys, "logs", bad.run_id[:8])
    assert code == 1
    assert "error: not-a-workbook: " in out
    assert err.startswith(f"run {bad.run_id[:8]} failed: not-a-workbook: ")


def test_datasets_name_the_run_and_the_container_that_plays_the_datastore(
        settings: LocalSettings, history: dict[str, runstore.Run], capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "datasets", "sales_orders")
    table, _, note = out.partition("\n\n")
    q3, q4 = history["sales/2026-q3.xlsx"], history["sales/2026-q4.xlsx"]
    out_dir = f"{settings.local_output_container}/azureml"
    assert [(r["version"], r["run"], r["rows"], r["columns"], r["path"]) for r in rows_of(table)] == [
        ("1", q3.run_id[:8], "240", "8", f"{out_dir}/{q3.step_run_id}/extracted/orders.parquet"),
        ("2", q4.run_id[:8], "260", "9", f"{out_dir}/{q4.step_run_id}/extracted/orders.parquet"),
    ]
    assert note.strip() == (f"paths are in the storage container {settings.local_output_container}, which plays the "
                            "datastore workspaceblobstore here")
    assert run_cli(capsys, "datasets", "nosuch")[0] == 1


def test_show_prints_a_version_as_table_csv_or_json(
        settings: LocalSettings, history: dict[str, runstore.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "show", "sales_orders:latest", "--head", "3")
    q4 = history["sales/2026-q4.xlsx"]
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"sales_orders:2 (run {q4.run_id[:8]}): 260 rows (first 3), 9 columns"
    assert lines[1] == (f"stored at {settings.local_output_container}/azureml/{q4.step_run_id}/extracted/orders.parquet"
                        " (datastore workspaceblobstore)")
    assert lines[2].split() == ["Order_ID", "Order_date", "Region", "SKU", "Quantity", "Unit_price", "Discount", "Paid",
                                "Notes"]
    assert len(lines) == 6

    code, out, _ = run_cli(capsys, "show", "sales_orders:1", "--format", "csv", "--head", "0")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 240
    assert rows[0]["Order_ID"] == "10001" and rows[0]["Order_date"] == "2026-09-17"

    code, out, _ = run_cli(capsys, "show", "sales_targets", "--format", "json")
    targets = json.loads(out)
    assert [t["Region"] for t in targets] == ["North", "South", "East", "West"] and "October" in targets[0]

    code, _, err = run_cli(capsys, "show", "sales_orders:3")
    assert code == 1 and err == "error: not-found: sales_orders: version 3 does not exist; versions are 1\N{EN DASH}2\n"


def test_storage_down_is_a_fast_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "SHEETDROP_STATE_DIR": str(tmp_path), "AZURITE_BLOB_PORT": str(free_port()),
           "AZURITE_QUEUE_PORT": str(free_port())}
    env.pop("INPUT_STORAGE", None)
    conn = db.connect(tmp_path)
    with runstore.transaction(conn):
        registry.register(conn, name="sales", datastore="workspaceblobstore",
                          relative_path="azureml/x/extracted/a.parquet")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", "show", "sales"], capture_output=True,
                          text=True, env=env, check=False, timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (f"error: storage-unreachable: nothing answers at http://127.0.0.1:{env['AZURITE_BLOB_PORT']}"
                           "/devstoreaccount1; is Azurite running? (`make run` starts it, or `sheetdrop host "
                           "--azurite`)\n")
    assert took < 5, f"took {took:.1f} s"


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{parser.prog.removeprefix('sheetdrop').strip()} {name}".strip()] = sub
                found.update(_commands(sub))
    return found


def test_every_argument_of_every_command_has_help_text() -> None:
    commands = _commands(cli.build_parser())
    assert {"host", "drop", "runs", "runs show", "logs", "datasets", "show", "ui", "convert",
            "publish"} <= set(commands)
    for name, parser in commands.items():
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), f"`sheetdrop {name}`: {action.dest} has no help"
            shown = action.option_strings[0] if action.option_strings else (action.metavar or action.dest)
            assert str(shown) in text and action.help.split("(")[0].strip()[:30] in " ".join(text.split()), \
                f"`sheetdrop {name} --help` does not describe {shown}"


@pytest.mark.parametrize("command", ["host", "drop", "runs", "runs show", "logs", "datasets", "show", "ui", "convert"])
def test_help_runs_and_exits_0(command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", *command.split(), "--help"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: sheetdrop {command}")


def test_a_usage_error_exits_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", "runs", "--status", "lost"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2 and "invalid choice: 'lost'" in proc.stderr
