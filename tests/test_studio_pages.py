"""The studio's pages served in-process (Starlette's TestClient) over a real run history on Azurite: what
each page says, that it only reads, that no secret but Azurite's published key is on it, and that the
copy-paste snippets load the version as shown. The whole flow in a real browser is test_studio_browser.py."""

from __future__ import annotations

import dataclasses
import re
from html import unescape

import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from conftest import SAMPLE
from history import deliver_and_run, make_history, upload
from sheetdrop.settings import StorageSettings
from sheetdrop_local import db, registry, runstore
from sheetdrop_local.azurite import AZURITE_KEY
from sheetdrop_local.readmodel import locations
from sheetdrop_local.settings import LocalSettings
from sheetdrop_local.studio import snippets
from sheetdrop_local.studio.app import create_app
from sheetdrop_step.converter import CONVERTER_VERSION


@pytest.fixture
def history(settings: LocalSettings) -> dict[str, runstore.Run]:
    return make_history(settings)


@pytest.fixture
def client(settings: LocalSettings) -> TestClient:
    return TestClient(create_app(settings))


def text(html: str) -> str:
    """The page's visible text, roughly: tags out, whitespace folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_run_list_shows_runs_failures_and_skipped_uploads(
        client: TestClient, history: dict[str, runstore.Run], settings: LocalSettings) -> None:
    page = client.get("/runs")
    assert page.status_code == 200
    shown = text(page.text)
    q4, bad = history["sales/2026-q4.xlsx"], history["sales/prices.xlsx"]
    assert f"{q4.run_id[:8]} completed {settings.input_container}/sales/2026-q4.xlsx etag {q4.source_etag}" in shown
    assert "sales_orders:2 , sales_products:2 , sales_targets:2" in shown
    assert f'href="/runs/{q4.run_id}"' in page.text and 'href="/datasets/sales_orders/2"' in page.text
    assert f"{bad.run_id[:8]} failed" in shown and "not-a-workbook: the file is a text file" in shown
    assert f"skipped {settings.input_container}/sales/readme.txt" in shown and "not a workbook extension" in shown
    # Nothing in progress: the list still refreshes, calmly.
    assert 'data-refresh="5"' in page.text

    failed_only = text(client.get("/runs", params={"status": "failed"}).text)
    assert "prices.xlsx" in failed_only and "2026-q4.xlsx" not in failed_only
    by_dataset = text(client.get("/runs", params={"dataset": "sales_targets"}).text)
    assert "2026-q3.xlsx" in by_dataset and "prices.xlsx" not in by_dataset and "readme.txt" not in by_dataset
    assert client.get("/runs", params={"status": "lost"}).status_code == 400


def test_a_run_page_has_the_lineage_sheets_metrics_and_log(
        client: TestClient, history: dict[str, runstore.Run]) -> None:
    q4 = history["sales/2026-q4.xlsx"]
    page = client.get(f"/runs/{q4.run_id[:8]}")
    assert page.status_code == 200
    shown = text(page.text)
    assert "extract sales/2026-q4.xlsx completed" in shown
    assert f"run {q4.run_id} completed → dataset versions sales_orders:2 sales_products:2 sales_targets:2" in shown
    assert "dataset_name sales" in shown and "input_account http://127.0.0.1:" in shown
    assert "Orders sales_orders:2 260 9" in shown and "Discount float64" in shown and "Notes string 243 null" in shown
    assert "Skipped sheets Sheet Reason Scratch empty" in shown
    assert "rows 271" in shown and "sheets 3" in shown
    assert "skipped sheet 'Scratch' of 2026-q4.xlsx: empty" in shown  # the log
    assert 'data-refresh="0"' in page.text  # an ended run does not refresh
    raw = client.get(f"/runs/{q4.run_id}/log")
    assert raw.headers["content-type"].startswith("text/plain") and raw.text.startswith("$ extract.py ")

    bad = history["sales/prices.xlsx"]
    failed = text(client.get(f"/runs/{bad.run_id}").text)
    assert "Failed: not-a-workbook: the file is a text file" in failed
    assert client.get("/runs/nosuchrun").status_code == 404


def test_a_dataset_version_page_has_schema_changes_preview_tags_and_history(
        client: TestClient, history: dict[str, runstore.Run]) -> None:
    listing = text(client.get("/datasets").text)
    q4 = history["sales/2026-q4.xlsx"]
    assert f"sales_orders 2 2 260 9 Orders sales/2026-q4.xlsx {q4.run_id[:8]}" in listing

    page = client.get("/datasets/sales_orders")  # the latest version
    shown = text(page.text)
    assert "sales_orders version 2 latest" in shown
    assert "Changes from version 1 added Discount (float64)" in shown
    assert "Discount float64 double 0 0 added" in shown
    assert "The first 20 of 260 rows." in shown and "10241" in shown
    assert "workspaceblobstore (played here by the storage container" in shown
    assert (f"Tags columns 9 converter_version {CONVERTER_VERSION} dataset_base sales rows 260 run_id {q4.run_id} "
            "schema ") in shown
    assert "schema_change added Discount (float64) sheet Orders source_blob sales/2026-q4.xlsx" in shown
    history_row = r"Versions Version Created Rows Columns Source blob Made by run 2 \S+ \S+ 260 9 sales/2026-q4.xlsx"
    assert re.search(history_row, shown)

    first = text(client.get("/datasets/sales_orders/1").text)
    assert "sales_orders version 1" in first and "The first version: nothing to compare with." in first
    assert "10001" in first
    assert client.get("/datasets/sales_orders/9").status_code == 404
    assert client.get("/datasets/nosuch").status_code == 404


def test_the_studio_only_reads(client: TestClient, history: dict[str, runstore.Run], settings: LocalSettings) -> None:
    before = [r.as_dict() for r in runstore.list_runs(db.connect(settings.state_dir))]
    for path in ("/runs", f"/runs/{history['sales/2026-q4.xlsx'].run_id}", "/datasets/sales_orders"):
        assert client.post(path).status_code == 405
        assert client.delete(path).status_code == 405
    assert [r.as_dict() for r in runstore.list_runs(db.connect(settings.state_dir))] == before


def test_snippets_load_the_version_as_shown(settings: LocalSettings, history: dict[str, runstore.Run]) -> None:
    conn = db.connect(settings.state_dir)
    version = registry.get(conn, "sales_orders", 2)
    service = locations.quick_service(settings)
    where = locations.location(settings, version, service)
    expected = registry.load_table(version, service, where.container).to_pandas()
    for snippet in (snippets.pandas_snippet(settings, where), snippets.polars_snippet(settings, where)):
        assert AZURITE_KEY in snippet and where.path in snippet
        scope: dict[str, object] = {}
        exec(compile(snippet, "snippet", "exec"), scope)
        frame = scope["df"]
        loaded = frame if hasattr(frame, "iloc") else frame.to_pandas()  # type: ignore[attr-defined]
        assert list(loaded.columns) == list(expected.columns) and len(loaded) == 260
        assert loaded["Order_ID"].tolist() == expected["Order_ID"].tolist()


def test_a_real_accounts_key_never_reaches_a_snippet(settings: LocalSettings) -> None:
    secret = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="
    other = dataclasses.replace(settings, storage=StorageSettings(
        connection_string=f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={secret};"
                          "EndpointSuffix=core.windows.net", account_url=None, client_id=None, retry_total=0))
    where = locations.Location("workspaceblobstore", "azureml-blobstore", "azureml/x/extracted/a.parquet",
                             "https://acct.blob.core.windows.net/azureml-blobstore/azureml/x/extracted/a.parquet")
    for snippet in (snippets.pandas_snippet(other, where), snippets.polars_snippet(other, where)):
        assert secret not in snippet and snippets.KEY_PLACEHOLDER in snippet
        assert "acct" in snippet


def test_ranged_reads_give_the_same_rows_as_a_download(settings: LocalSettings,
                                                      history: dict[str, runstore.Run]) -> None:
    import io

    from sheetdrop_local.readmodel import parquetview

    version = registry.get(db.connect(settings.state_dir), "sales_orders", 1)
    where = locations.location(settings, version, locations.quick_service(settings))
    blob = locations.quick_service(settings).get_blob_client(where.container, where.path)
    parquet, size = parquetview.open_parquet(blob)
    assert parquetview.head(parquet, 5).num_rows == 5
    whole = pq.read_table(io.BytesIO(blob.download_blob().readall()))
    assert parquetview.head(parquet, 0).equals(whole) and size == blob.get_blob_properties().size


def test_pages_still_answer_when_storage_is_down(settings: LocalSettings, history: dict[str, runstore.Run]) -> None:
    from sheetdrop_local.azurite import azurite_connection_string, free_port

    down = dataclasses.replace(settings, storage=StorageSettings(
        connection_string=azurite_connection_string(free_port(), free_port()), retry_total=0))
    client = TestClient(create_app(down))
    runs = text(client.get("/runs").text)
    assert "storage is unreachable, so skipped and poisoned blob versions are not listed" in runs
    assert "2026-q4.xlsx" in runs and "readme.txt" not in runs
    run = text(client.get(f"/runs/{history['sales/2026-q4.xlsx'].run_id}").text)
    assert "null and error counts need" in run and "which could not be read: storage is unreachable" in run
    assert "Discount float64" in run  # the types still come from the run's metrics
    dataset = client.get("/datasets/sales_orders")
    assert dataset.status_code == 200
    assert "storage is unreachable: the schema and preview need Azurite" in text(dataset.text)


def test_a_run_page_shows_the_read_options_the_header_found_and_the_warnings(
        client: TestClient, settings: LocalSettings) -> None:
    finance = SAMPLE.parent / "finance"
    upload(settings, "finance/sheetdrop.json", (finance / "sheetdrop.json").read_bytes())
    upload(settings, "finance/q3.xlsx", (finance / "q3-2026-report.xlsx").read_bytes())
    deliver_and_run(settings)
    [run] = [r for r in runstore.list_runs(db.connect(settings.state_dir)) if r.source_blob == "finance/q3.xlsx"]
    shown = text(client.get(f"/runs/{run.run_id}").text)
    assert 'read_options {"file": "finance/sheetdrop.json", "text":' in shown
    assert "Report header in rows 4-5 (joined); title rows 1, 2 skipped finance:1 12 8" in shown
    assert "Skipped sheets Sheet Reason Notes excluded by sheets.exclude 'Notes'" in shown
    assert "column Unit_price (F): 1 cell did not fit float64 and is in _rescued_data (F13 'n/a')" in shown
    assert "Last_order date" in shown and "_rescued_data string 11 null" in shown
