"""Per-folder read options: the nearest sheetdrop.json applies, every mistake is named (file, key,
what is allowed, all at once), an invalid file is recorded as it lands, workbooks that arrive while it
is invalid wait as `options invalid`, and fixing it lets them be converted without uploading them again."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE
from sheetdrop import options
from sheetdrop.claims import ClaimState
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop.trigger import BlobVersion, claim_store, handle_blob
from sheetdrop_contract.read_options import CellRange, OptionsError, ReadOptions, parse, parse_range
from sheetdrop_local import cli, db, registry, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings


def test_a_full_file_parses() -> None:
    text = json.dumps({"sheets": {"include": ["Sales*"], "exclude": ["Notes"]}, "range": "b3:h", "header_rows": 2,
                       "footer": {"drop_rows": 1}, "types": {"Amount": "float", "When": "date"},
                       "mixed_columns": "rescue", "schema_changes": "fail", "dataset": "Sales EMEA"})
    assert parse(text, "sales/sheetdrop.json") == ReadOptions(
        file="sales/sheetdrop.json", include=("Sales*",), exclude=("Notes",), range="B3:H", header_rows=2,
        footer_rows=1, types={"Amount": "float", "When": "date"}, mixed_columns="rescue", schema_changes="fail",
        dataset="Sales EMEA")
    assert parse("{}", "f") == ReadOptions(file="f")


@pytest.mark.parametrize(("text", "message"), [
    ("{", "sales/sheetdrop.json: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
          "(char 1))"),
    ("[]", "sales/sheetdrop.json: must be a JSON object with any of the keys sheets, range, header_rows, footer, "
           "types, mixed_columns, schema_changes, dataset, versions"),
    ('{"colour": 1}', "sales/sheetdrop.json: colour: unknown key (the keys are sheets, range, header_rows, footer, "
                      "types, mixed_columns, schema_changes, dataset, versions)"),
    ('{"range": "3B:H"}', "sales/sheetdrop.json: range: '3B:H' is not a cell range like B3, B3:H200, B3:H or A:H"),
    ('{"range": "H3:B9"}', "sales/sheetdrop.json: range: 'H3:B9' is its end comes before its start"),
    ('{"header_rows": "two"}', "sales/sheetdrop.json: header_rows: a whole number from 0 (no header) to 10 "
                               "(rows joined into one name)"),
    ('{"types": {"Amount": "money"}}', "sales/sheetdrop.json: types.Amount: 'money' is not one of int, float, "
                                       "string, date, datetime, bool, time, duration"),
    ('{"mixed_columns": "textual"}', "sales/sheetdrop.json: mixed_columns: 'textual' is not one of text, rescue"),
    ('{"schema_changes": "strict"}', "sales/sheetdrop.json: schema_changes: 'strict' is not one of evolve, fail, "
                                     "rescue"),
    ('{"versions": "tables"}', "sales/sheetdrop.json: versions: 'tables' is not one of file, table"),
    ('{"footer": {"drop_rows": -1}}', "sales/sheetdrop.json: footer.drop_rows: a whole number of rows to drop at "
                                      "the end, 0 or more"),
    ('{"sheets": {"include": "Sales"}}', "sales/sheetdrop.json: sheets.include: a list of sheet names or patterns "
                                         "(* and ? as in file names)"),
])
def test_every_mistake_names_the_file_the_key_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(OptionsError) as error:
        parse(text, "sales/sheetdrop.json")
    assert str(error.value) == message


def test_every_mistake_is_named_at_once_with_the_key_a_near_miss_meant() -> None:
    # The file: on b5e30cf the first mistake alone was named (`footr: unknown key`), and a
    # fixed footr then revealed `textual`; no "did you mean".
    text = '{"header_rows": 1, "mixed_columns": "textual", "footr": {}, "sheets": {"exlude": ["Notes"]}}'
    with pytest.raises(OptionsError) as error:
        parse(text, "sales/sheetdrop.json")
    assert error.value.problems == [
        "footr: unknown key, did you mean footer?",
        "sheets.exlude: unknown key, did you mean exclude?",
        "mixed_columns: 'textual' is not one of text, rescue",
    ]
    assert str(error.value) == "sales/sheetdrop.json: " + "; ".join(error.value.problems)


def test_a_byte_order_mark_is_no_mistake() -> None:
    assert parse('\ufeff{"header_rows": 2}', "sales/sheetdrop.json").header_rows == 2


def test_ranges() -> None:
    assert parse_range("B3:H200") == CellRange(1, 2, 7, 199)
    assert parse_range("B3") == CellRange(1, 2, None, None)
    assert parse_range("A:AB") == CellRange(0, 0, 27, None)


def test_the_nearest_file_up_the_folders_applies(settings: LocalSettings) -> None:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    container.upload_blob("sheetdrop.json", b'{"header_rows": 1}')
    container.upload_blob("sales/sheetdrop.json", b'{"header_rows": 2}')
    assert options.candidates("sales/emea/q3.xlsx") == ["sales/emea/sheetdrop.json", "sales/sheetdrop.json",
                                                        "sheetdrop.json"]
    assert options.for_blob(container, "sales/emea/q3.xlsx")[0].header_rows == 2
    assert options.for_blob(container, "hr/q3.xlsx")[0].header_rows == 1
    assert options.for_blob(container, "q3.xlsx")[0] == ReadOptions(file="sheetdrop.json", header_rows=1)


def test_an_invalid_file_is_recorded_as_it_lands_and_its_workbooks_wait_for_the_fix(settings: LocalSettings) -> None:
    """On b5e30cf the options file was recorded as skipped without a word on its validity, and each
    workbook was submitted and failed in the step with the first mistake only."""
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    bad = '{"mixed_columns": "textual", "footr": {}}'
    options_etag = container.get_blob_client("sales/sheetdrop.json").upload_blob(bad.encode())["etag"]
    etag = container.get_blob_client("sales/q3.xlsx").upload_blob(SAMPLE.read_bytes())["etag"]
    host, runner = DevHost(settings), LocalRunner.from_settings(settings)
    assert host.scan_once() == 2
    assert runner.run_next() is None  # nothing submitted: the run would only fail
    conn = db.connect(settings.state_dir)
    assert runstore.list_runs(conn) == []

    every = ("sales/sheetdrop.json: footr: unknown key, did you mean footer?; "
             "mixed_columns: 'textual' is not one of text, rescue")
    claims = claim_store(settings)
    [skipped] = claims.skipped()
    assert (skipped.blob, skipped.etag, skipped.options_errors) == (
        "sales/sheetdrop.json", options_etag, ["footr: unknown key, did you mean footer?",
                                               "mixed_columns: 'textual' is not one of text, rescue"])
    [waiting] = claims.list(ClaimState.OPTIONS_INVALID)
    assert (waiting.blob, waiting.etag, waiting.last_error) == ("sales/q3.xlsx", etag, every)
    assert container.get_blob_client("sales/q3.xlsx").get_blob_properties().etag == etag  # input untouched

    # Fixed: the same workbook version, delivered again (what a re-run does), is converted without
    # being uploaded again.
    fixed_etag = container.get_blob_client("sales/sheetdrop.json").upload_blob(
        b'{"mixed_columns": "text"}', overwrite=True)["etag"]
    host.scan_once()
    assert [s.options_errors for s in claims.skipped() if s.etag == fixed_etag] == [[]]
    outcome = handle_blob(BlobVersion(settings.input_container, "sales/q3.xlsx", etag, SAMPLE.stat().st_size),
                          invocation_id="rerun")
    assert outcome.action == "submitted"
    run = runner.run_next()
    assert run is not None and run.status == "completed" and run.source_etag == etag, run and run.error
    assert list(claims.list(ClaimState.OPTIONS_INVALID)) == []


def test_the_dataset_option_names_the_dataset(settings: LocalSettings) -> None:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    container.upload_blob("inbox/sheetdrop.json", b'{"dataset": "Sales EMEA"}')
    container.upload_blob("inbox/q3.xlsx", SAMPLE.read_bytes())
    DevHost(settings).scan_once()
    [run] = runstore.list_runs(db.connect(settings.state_dir))
    assert run.dataset_name == "sales_emea"


def test_a_report_folder_is_read_as_its_options_say_and_the_run_shows_them(
        settings: LocalSettings, capsys: pytest.CaptureFixture[str]) -> None:
    finance = SAMPLE.parent / "finance"
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    container.upload_blob("finance/sheetdrop.json", (finance / "sheetdrop.json").read_bytes())
    container.upload_blob("finance/q3.xlsx", (finance / "q3-2026-report.xlsx").read_bytes())
    DevHost(settings).scan_once()
    run = LocalRunner.from_settings(settings).run_next()
    assert run is not None and run.status == "completed", run.error
    assert json.loads(run.read_options) == {"file": "finance/sheetdrop.json",
                                            "text": (finance / "sheetdrop.json").read_text()}
    assert {k: v for k, v in run.metrics.items() if k.startswith("report.parquet:") or k == "skipped_sheets"} == {
        "skipped_sheets": '{"Notes": "excluded by sheets.exclude \'Notes\'"}',
        "report.parquet:column_types": json.dumps({
            "Last_order": "date", "Region": "string", "Rep": "string", "Unit_price": "float64",
            "Units_sold_Aug": "int64", "Units_sold_Jul": "int64", "Units_sold_Sep": "int64",
            "_rescued_data": "string"}),
        "report.parquet:error_cells": 0,
        "report.parquet:header": "header in rows 4-5 (joined); title rows 1, 2 skipped",
        "report.parquet:warnings": json.dumps(["column Unit_price (F): 1 cell did not fit float64 and is in "
                                               "_rescued_data (F13 'n/a')"]),
        "report.parquet:rescued_cells": '{"Unit_price": 1}'}
    [version] = registry.list_versions(db.connect(settings.state_dir), "finance")
    assert (version.tags["rows"], version.tags["sheet"]) == ("12", "Report")
    assert cli.main(["runs", "show", run.run_id]) == 0
    shown = capsys.readouterr().out
    assert "read_options" in shown and "finance/sheetdrop.json" in shown
    assert "column Unit_price (F): 1 cell did not fit float64 and is in _rescued_data (F13 'n/a')" in shown
