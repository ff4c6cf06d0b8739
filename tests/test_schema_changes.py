"""A schema that cannot drift silently: each version is compared with the previous one, the
difference is recorded on the version and the run, and a folder can make it fail the run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import openpyxl
import pytest

from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import cli, db, registry, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings
from sheetdrop_step.schema_changes import SchemaChange, compare


def workbook(prices: list[object], sheets: tuple[str, ...] = ("Items",)) -> bytes:
    book = openpyxl.Workbook()
    for index, title in enumerate(sheets):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = title
        sheet.append(["Item", "Unit price"])
        for i, price in enumerate(prices):
            sheet.append([f"item{i}", price])
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def drop_and_run(settings: LocalSettings, name: str, data: bytes) -> runstore.Run:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    container.upload_blob(name, data, overwrite=True)
    DevHost(settings).scan_once()
    run = LocalRunner.from_settings(settings).run_next()
    assert run is not None
    return run


def test_the_difference_in_one_line() -> None:
    change = compare({"Item": "string", "Unit_price": "float64", "Notes": "string"},
                     {"Item": "string", "Unit_price": "string", "Region": "string", "Qty": "int64"})
    assert change == SchemaChange(added={"Region": "string", "Qty": "int64"}, removed={"Notes": "string"},
                                  retyped={"Unit_price": ("float64", "string")})
    assert change.describe() == "Unit_price float64 → string; added Region (string); added Qty (int64); " \
                                "removed Notes (string)"
    assert compare({"a": "int64", "b": "string"}, {"a": "int64", "c": "string"}).describe() == "renamed b → c"
    assert not compare({"a": "int64"}, {"a": "int64"})


def test_a_drifted_column_is_recorded_on_the_version_and_shown(settings: LocalSettings,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    first = drop_and_run(settings, "prices/v1.xlsx", workbook([1.5, 2.25, 3.0]))
    second = drop_and_run(settings, "prices/v2.xlsx", workbook([1.5, 2.25, "n/a"]))
    assert (first.status, second.status) == ("completed", "completed"), second.error
    v1, v2 = registry.list_versions(db.connect(settings.state_dir), "prices")
    assert (v1.tags["schema_change"], v2.tags["schema_change"]) == ("first version", "Unit_price float64 → string")
    assert json.loads(v2.tags["schema"]) == {"Item": "string", "Unit_price": "string"}
    assert json.loads(second.metrics["schema_changes"]) == {"prices": "Unit_price float64 → string"}
    assert "warning: prices: columns changed since its previous version: Unit_price float64 → string" in \
        Path(second.log_path or "").read_text()
    cli.main(["datasets", "prices"])
    table = capsys.readouterr().out.splitlines()
    assert "SCHEMA_CHANGE" in table[0]
    assert "Unit_price float64 → string" in table[2] and "first version" in table[1]


def test_fail_leaves_no_new_version(settings: LocalSettings) -> None:
    ensure_container(blob_service(settings.storage), settings.input_container).upload_blob(
        "prices/sheetdrop.json", b'{"schema_changes": "fail"}')
    drop_and_run(settings, "prices/v1.xlsx", workbook([1.5, 2.25]))
    failed = drop_and_run(settings, "prices/v2.xlsx", workbook([1.5, "n/a"]))
    assert (failed.status, failed.error) == ("failed", (
        'schema: prices: Unit_price float64 → string (the folder\'s options say "schema_changes": "fail"; '
        'change them to "evolve" to accept the new columns)'))
    assert [v.version for v in registry.list_versions(db.connect(settings.state_dir), "prices")] == [1]
    output = blob_service(settings.storage).get_container_client(settings.local_output_container)
    assert [n for n in output.list_blob_names() if n.startswith(f"azureml/{failed.step_run_id}")] == []


def test_a_sheet_that_is_gone_is_named(settings: LocalSettings) -> None:
    drop_and_run(settings, "books/a.xlsx", workbook([1.0], sheets=("Orders", "Returns")))
    run = drop_and_run(settings, "books/b.xlsx", workbook([1.0], sheets=("Orders", "Refunds")))
    assert run.metrics["datasets_without_new_version"] == "books_returns"
    assert "warning: no new version for books_returns: the workbook no longer has that sheet" in \
        Path(run.log_path or "").read_text()


def test_rescue_keeps_the_previous_types_and_rescues_what_does_not_fit(settings: LocalSettings,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ensure_container(blob_service(settings.storage), settings.input_container).upload_blob(
        "prices/sheetdrop.json", b'{"schema_changes": "rescue"}')
    first = drop_and_run(settings, "prices/v1.xlsx", workbook([1.5, 2.25]))
    second = drop_and_run(settings, "prices/v2.xlsx", workbook([1.5, "n/a", 4]))
    assert (first.status, second.status) == ("completed", "completed"), second.error
    v1, v2 = registry.list_versions(db.connect(settings.state_dir), "prices")
    assert json.loads(v1.tags["schema"]) == json.loads(v2.tags["schema"]) == {
        "Item": "string", "Unit_price": "float64", "_rescued_data": "string"}
    assert v2.tags["schema_change"] == "none"
    assert second.metrics["items.parquet:rescued_cells"] == '{"Unit_price": 1}'
    capsys.readouterr()
    assert cli.main(["show", "prices:2", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Item,Unit_price,_rescued_data", "item0,1.5,", 'item1,,"{""Unit_price"": ""n/a""}"', "item2,4.0,"]


def test_rescue_reads_the_previous_types_of_each_sheet(settings: LocalSettings,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    ensure_container(blob_service(settings.storage), settings.input_container).upload_blob(
        "books/sheetdrop.json", b'{"schema_changes": "rescue"}')
    drop_and_run(settings, "books/a.xlsx", workbook([1.0, 2.0], sheets=("Orders", "Returns")))
    capsys.readouterr()
    run = drop_and_run(settings, "books/b.xlsx", workbook(["TBD", 2.0], sheets=("Orders", "Returns")))
    assert run.status == "completed", run.error
    for name in ("books_orders", "books_returns"):
        latest = registry.list_versions(db.connect(settings.state_dir), name)[-1]
        assert json.loads(latest.tags["schema"])["Unit_price"] == "int64"
        assert cli.main(["show", f"{name}:latest", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Item,Unit_price,_rescued_data", 'item0,,"{""Unit_price"": ""TBD""}"', "item1,2,"] * 2
