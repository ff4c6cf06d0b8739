"""The studio's pages served in-process (Starlette's TestClient) over a real run history on Azurite: what
each page says, that it only reads, that no secret but Azurite's published key is on it, and that the
copy-paste snippets load the version as shown. The whole flow in a real browser is test_studio_browser.py."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from html import unescape
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from conftest import SAMPLE
from history import deliver_and_run, make_history, upload
from sheetdrop.settings import StorageSettings
from sheetdrop_local import db, registry, runstore
from sheetdrop_local.azurite import AZURITE_KEY
from sheetdrop_local.readmodel import locations
from sheetdrop_local.readmodel import runs as runs_model
from sheetdrop_local.settings import LocalSettings
from sheetdrop_local.studio import snippets
from sheetdrop_local.studio.app import create_app
from sheetdrop_step.converter import CONVERTER_VERSION

DASH = "\N{EN DASH}"


@pytest.fixture
def history(settings: LocalSettings) -> dict[str, runstore.Run]:
    return make_history(settings)


@pytest.fixture
def client(settings: LocalSettings) -> TestClient:
    return TestClient(create_app(settings), base_url="http://localhost")


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
    client = TestClient(create_app(down), base_url="http://localhost")
    runs = text(client.get("/runs").text)
    assert "storage is unreachable, so blob versions without a run (skipped, poisoned, options) are as last " \
           "seen" in runs
    assert "2026-q4.xlsx" in runs and "readme.txt" not in runs  # never seen: this state never listed the runs
    run = text(client.get(f"/runs/{history['sales/2026-q4.xlsx'].run_id}").text)
    assert "null and error counts need" in run and "which could not be read: storage is unreachable" in run
    assert "Discount float64" in run  # the types still come from the run's metrics
    dataset = client.get("/datasets/sales_orders")
    assert dataset.status_code == 200
    shown = text(dataset.text)
    assert "storage is unreachable: the schema and preview need Azurite" in shown
    # The schema the version's tags hold is still shown (on b5e30cf the page had no schema at all).
    assert ("Schema As the version's tags hold it; the null and error counts need its parquet. Column Type "
            "Order_ID int64 Order_date timestamp") in shown and "Discount float64" in shown
    assert "Change from the previous version (its tag): added Discount (float64)" in shown


def test_a_run_page_shows_the_read_options_the_header_found_and_the_warnings(
        client: TestClient, settings: LocalSettings) -> None:
    finance = SAMPLE.parent / "finance"
    upload(settings, "finance/sheetdrop.json", (finance / "sheetdrop.json").read_bytes())
    upload(settings, "finance/q3.xlsx", (finance / "q3-2026-report.xlsx").read_bytes())
    deliver_and_run(settings)
    [run] = [r for r in runstore.list_runs(db.connect(settings.state_dir)) if r.source_blob == "finance/q3.xlsx"]
    shown = text(client.get(f"/runs/{run.run_id}").text)
    # The file's name among the parameters, its JSON readable below (on b5e30cf: JSON in a JSON string, \n and all).
    assert "read_options finance/sheetdrop.json" in shown
    page = client.get(f"/runs/{run.run_id}").text
    block = re.search(r'<pre class="code" id="read-options">(.*?)</pre>', page, re.S)
    assert block and json.loads(unescape(block[1])) == json.loads((finance / "sheetdrop.json").read_text())
    assert unescape(block[1]).startswith('{\n  "sheets": {\n    "exclude": [\n      "Notes"')
    assert "Report header in rows 4-5 (joined); title rows 1, 2 skipped finance:1 12 8" in shown
    assert "Skipped sheets Sheet Reason Notes excluded by sheets.exclude 'Notes'" in shown
    assert "column Unit_price (F): 1 cell did not fit float64 and is in _rescued_data (F13 'n/a')" in shown
    assert "Last_order date" in shown and "_rescued_data string 11 null" in shown


# Issue 26: the run list's filters and paging, a failed run's successor, the options files; what
# keeps the studio safe on a shared machine.


def test_the_run_list_is_filtered_and_paged_by_one_query(
        client: TestClient, history: dict[str, runstore.Run], settings: LocalSettings) -> None:
    """On b5e30cf the dataset filter matched a whole name only, in its case; there was no blob or date
    filter, and no paging (100 rows, fixed); the rows were gathered run by run and sorted in Python."""
    blobs = lambda **params: re.findall(rf"{settings.input_container}/sales/(\S+) ",  # noqa: E731
                                        text(client.get("/runs", params=params).text))
    assert blobs(dataset="SALES_ORD") == ["2026-q4.xlsx", "2026-q3.xlsx"] and blobs(dataset="Sales") == [
        "prices.xlsx", "2026-q4.xlsx", "2026-q3.xlsx"]
    assert blobs(blob="PRICES") == ["prices.xlsx"] and blobs(blob="readme") == ["readme.txt"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    assert len(blobs(since=today, until=today)) == 4 and blobs(since=tomorrow) == [] and blobs(until="2020-01-01") == []

    first = client.get("/runs", params={"limit": 3, "dataset": "sales"})
    assert f"1{DASH}3 of 3" in text(first.text) and 'rel="next"' not in first.text
    first = client.get("/runs", params={"limit": 2})
    assert f"1{DASH}2 of 4" in text(first.text) and 'href="/runs?limit=2&amp;page=2"' in first.text
    second = client.get("/runs", params={"limit": 2, "page": 2})
    assert f"3{DASH}4 of 4" in text(second.text) and 'href="/runs?limit=2&amp;page=1"' in second.text
    assert blobs(limit=2) + blobs(limit=2, page=2) == ["readme.txt", "prices.xlsx", "2026-q4.xlsx", "2026-q3.xlsx"]
    for bad in ({"limit": "0"}, {"limit": "5000"}, {"page": "-1"}, {"since": "yesterday"}, {"blob": "x" * 201}):
        assert client.get("/runs", params=bad).status_code == 400, bad

    # One SQL statement selects the page, filters and paging included (then one reads what the runs made).
    conn = db.connect(settings.state_dir)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    found = runs_model.activity(conn, settings, locations.quick_service(settings), limit=2, offset=1, dataset="ORDERS",
                                fresh=False)
    assert [e.blob for e in found.entries] == ["sales/2026-q3.xlsx"] and found.total == 2
    [query] = [s for s in statements if "FROM runs" in s]
    assert "LIMIT" in query and "OFFSET" in query and "FROM unrun" in query


def test_a_failed_run_links_to_the_later_run_of_its_blob_that_completed(
        client: TestClient, history: dict[str, runstore.Run], settings: LocalSettings,
        capsys: pytest.CaptureFixture[str]) -> None:
    from sheetdrop_local import cli

    bad = history["sales/prices.xlsx"]
    assert 'id="later"' not in client.get(f"/runs/{bad.run_id}").text
    upload(settings, "sales/prices.xlsx", SAMPLE.read_bytes())
    deliver_and_run(settings)
    [fixed] = [r for r in runstore.list_runs(db.connect(settings.state_dir))
               if r.source_blob == "sales/prices.xlsx" and r.status == "completed"]
    page = client.get(f"/runs/{bad.run_id}").text
    assert f'A later run of this blob completed: <a href="/runs/{fixed.run_id}">{fixed.run_id[:8]}</a>' in page
    assert cli.main(["runs", "show", bad.run_id]) == 1
    assert f"  later run   {fixed.run_id[:8]} completed" in capsys.readouterr().out


def test_options_files_are_shown_in_force_or_invalid_and_their_workbooks_as_options_invalid(
        client: TestClient, settings: LocalSettings, capsys: pytest.CaptureFixture[str]) -> None:
    """On b5e30cf an options file was listed as skipped, valid or not, and a workbook under an invalid
    one as a failed run naming its first mistake."""
    upload(settings, "finance/sheetdrop.json", b'{"header_rows": 2}')
    upload(settings, "hr/sheetdrop.json", b'{"header_rows": 2, "footr": {"drop_rows": 1}, "mixed_columns": "x"}')
    etag = upload(settings, "hr/q3.xlsx", SAMPLE.read_bytes())
    deliver_and_run(settings)
    shown = text(client.get("/runs").text)
    assert f"options {settings.input_container}/finance/sheetdrop.json" in shown and "in force" in shown
    mistakes = "footr: unknown key, did you mean footer?; mixed_columns: 'x' is not one of text, rescue"
    assert f"options {settings.input_container}/hr/sheetdrop.json etag " in shown and f"invalid: {mistakes}" in shown
    assert (f"options invalid {settings.input_container}/hr/q3.xlsx etag {etag}" in shown
            and f"hr/sheetdrop.json: {mistakes}; fix the folder's sheetdrop.json" in shown)
    assert runstore.list_runs(db.connect(settings.state_dir)) == []
    upload(settings, "finance/sheetdrop.json", b'{"header_rows": 1}')
    deliver_and_run(settings)
    listed = text(client.get("/runs", params={"status": "options", "blob": "finance"}).text)
    assert "valid; replaced by a newer version" in listed and listed.count("in force") == 1
    assert "hr/q3.xlsx" in text(client.get("/runs", params={"status": "options invalid"}).text)
    # `sheetdrop runs` reads the same list.
    from sheetdrop_local import cli

    assert cli.main(["runs", "--json"]) == 0
    listed = {(r["source_blob"], r["status"]): r["error"] for r in json.loads(capsys.readouterr().out)}
    assert listed[("hr/sheetdrop.json", "options")] == f"invalid: {mistakes}"
    assert listed[("finance/sheetdrop.json", "options")] in ("in force", "valid; replaced by a newer version")
    assert listed[("hr/q3.xlsx", "options invalid")].startswith(f"hr/sheetdrop.json: {mistakes}; fix the folder's")


SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def test_every_answer_carries_the_security_headers(client: TestClient, history: dict[str, runstore.Run]) -> None:
    """On b5e30cf there was no Content-Security-Policy, X-Content-Type-Options or X-Frame-Options."""
    q4 = history["sales/2026-q4.xlsx"]
    for path, status in (("/runs", 200), (f"/runs/{q4.run_id}", 200), (f"/runs/{q4.run_id}/log", 200),
                         ("/datasets/sales_orders/1", 200), ("/static/studio.js", 200), ("/nowhere", 404),
                         ("/runs?limit=0", 400), ("/", 200)):
        answer = client.get(path)
        assert answer.status_code == status, path
        assert {k: answer.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, path
    # A page holds no inline script or handler the policy would refuse.
    for path in ("/runs", f"/runs/{q4.run_id}", "/datasets/sales_orders"):
        page = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)|\son[a-z]+=|javascript:", page), path


def test_a_foreign_host_is_refused_naming_the_setting(settings: LocalSettings, history: dict[str, runstore.Run],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """On b5e30cf `Host: evil.example` got 200: a DNS-rebinding page could read run logs and data."""
    app = create_app(settings)
    for host in ("localhost:8765", "127.0.0.1:8765", "[::1]:8765", "LOCALHOST"):
        assert TestClient(app, base_url=f"http://{host}").get("/runs").status_code == 200, host
    refused = TestClient(app, base_url="http://evil.example:8765").get(
        f"/runs/{history['sales/2026-q4.xlsx'].run_id}/log")
    assert refused.status_code == 400 and "$ extract.py" not in refused.text
    assert refused.text.startswith("This studio answers to localhost and IP addresses, not to 'evil.example'")
    assert "list the name in SHEETDROP_UI_HOSTS" in refused.text
    assert {k: refused.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS
    named = create_app(dataclasses.replace(settings, ui_hosts=("studio.lan",)))
    assert TestClient(named, base_url="http://studio.lan:8765").get("/runs").status_code == 200
    assert TestClient(named, base_url="http://evil.example").get("/runs").status_code == 400


def test_inputs_are_bounded_and_an_error_shows_no_traceback(client: TestClient, settings: LocalSettings,
                                                            history: dict[str, runstore.Run],
                                                            caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """On b5e30cf a run id of 60,000 characters was an HTTP 500 with a traceback in the terminal
    (`sqlite3.OperationalError: LIKE or GLOB pattern too complex`, once there are runs to match)."""
    long = client.get("/runs/" + "a" * 60_000)
    assert long.status_code == 404 and "no run 'aaaa" in text(long.text)
    # Anything else that goes wrong: the error page, and one line in the log, no traceback.
    broken = tmp_path / "not-a-folder"
    broken.write_text("")
    failing = TestClient(create_app(dataclasses.replace(settings, state_dir=broken)), base_url="http://localhost",
                         raise_server_exceptions=False)
    with caplog.at_level("ERROR", logger="sheetdrop.studio"):
        answer = failing.get("/runs")
    assert answer.status_code == 500 and "Traceback" not in answer.text and "not-a-folder" not in answer.text
    assert "The studio could not show this page" in text(answer.text)
    [record] = [r for r in caplog.records if r.name == "sheetdrop.studio"]
    assert record.getMessage().startswith("studio: GET /runs failed: ") and record.exc_info is None
