"""A folder as one table (``"versions": "table"``): each new version of ``<folder>_<sheet>`` is the whole folder so
far — each workbook's latest successful conversion, an overwritten workbook replacing its own rows, a deleted one's
rows gone, a rejected newest version leaving the previous rows. Real Azurite, the real runner and step; what is
checked is the registry, the manifests on the output container and the parquet read back with pyarrow."""

from __future__ import annotations

import io
import json

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
from azure.storage.blob import ContainerClient

from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_contract.table import Manifest
from sheetdrop_local import db, registry, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.readmodel import tables
from sheetdrop_local.registry import DatasetVersion
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings

TABLE = '{"versions": "table"}'


def workbook(sheets: dict[str, list[list[object]]]) -> bytes:
    """A workbook whose sheets hold these rows (the first row is the header)."""
    book = openpyxl.Workbook()
    for index, (title, rows) in enumerate(sheets.items()):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = title
        for row in rows:
            sheet.append(row)
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def orders(*rows: tuple[str, float]) -> bytes:
    return workbook({"Orders": [["Region", "Amount"], *[list(r) for r in rows]]})


def drop(settings: LocalSettings, name: str, data: bytes) -> str:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    return container.get_blob_client(name).upload_blob(data, overwrite=True)["etag"]


def run(settings: LocalSettings) -> list[runstore.Run]:
    DevHost(settings).scan_once()
    runner = LocalRunner.from_settings(settings)
    done = []
    while (ended := runner.run_next()) is not None:
        done.append(ended)
    return done


def drop_and_run(settings: LocalSettings, name: str, data: bytes) -> runstore.Run:
    drop(settings, name, data)
    [ended] = run(settings)
    return ended


def output(settings: LocalSettings) -> ContainerClient:
    return blob_service(settings.storage).get_container_client(settings.local_output_container)


def versions(settings: LocalSettings, name: str) -> list[DatasetVersion]:
    return registry.list_versions(db.connect(settings.state_dir), name)


def rows_of(settings: LocalSettings, version: DatasetVersion) -> list[dict[str, object]]:
    """The version's rows as pyarrow reads its manifest's files, straight from the output container."""
    found = Manifest.from_text(output(settings).get_blob_client(version.relative_path).download_blob().readall())
    parts = [pq.read_table(io.BytesIO(output(settings).get_blob_client(f.path).download_blob().readall()))
             for f in tables.files(output(settings), found)]
    return sorted(pa.concat_tables(parts, promote_options="permissive").to_pylist(),
                  key=lambda r: (r["_source_blob"], str(r.get("Region"))))


def test_add_overwrite_delete_and_a_rejected_newest_version(settings: LocalSettings) -> None:
    drop(settings, "sales/sheetdrop.json", TABLE.encode())
    a1 = drop(settings, "sales/a.xlsx", orders(("north", 1.5), ("south", 2.5)))
    assert [r.status for r in run(settings)] == ["completed"]
    b1 = drop(settings, "sales/b.xlsx", orders(("east", 10.0)))
    assert [r.status for r in run(settings)] == ["completed"]
    v1, v2 = versions(settings, "sales_orders")
    assert (v1.tags["table_version"], v2.tags["table_version"]) == ("1", "2")
    assert (v1.tags["table_sources"], v2.tags["table_sources"], v2.tags["rows"]) == ("1", "2", "3")
    assert [(r["_source_blob"], r["_source_etag"], r["Region"], r["Amount"]) for r in rows_of(settings, v2)] == [
        ("sales/a.xlsx", a1, "north", 1.5), ("sales/a.xlsx", a1, "south", 2.5), ("sales/b.xlsx", b1, "east", 10.0)]

    # Overwritten: a's rows are replaced by its new content; b's stay.
    a2 = drop(settings, "sales/a.xlsx", orders(("west", 7.0)))
    assert [r.status for r in run(settings)] == ["completed"]
    v3 = versions(settings, "sales_orders")[-1]
    assert [(r["_source_blob"], r["_source_etag"], r["Region"]) for r in rows_of(settings, v3)] == [
        ("sales/a.xlsx", a2, "west"), ("sales/b.xlsx", b1, "east")]
    assert json.loads(v3.tags["table_change"]) == {"replaced": ["sales/a.xlsx"]}

    # A rejected newest version of a: the run fails, no new version, a's previous rows stay.
    failed = drop_and_run(settings, "sales/a.xlsx", b"not a workbook")
    assert failed.status == "failed" and failed.error.startswith("not-a-workbook")
    assert versions(settings, "sales_orders")[-1].version == v3.version

    # Deleted: b's rows leave the table at its next version (observed when that version is committed).
    blob_service(settings.storage).get_container_client(settings.input_container).delete_blob("sales/b.xlsx")
    c1 = drop(settings, "sales/c.xlsx", orders(("up", 3.0)))
    assert [r.status for r in run(settings)] == ["completed"]
    v4 = versions(settings, "sales_orders")[-1]
    assert [(r["_source_blob"], r["_source_etag"], r["Region"]) for r in rows_of(settings, v4)] == [
        ("sales/a.xlsx", a2, "west"), ("sales/c.xlsx", c1, "up")]
    assert json.loads(v4.tags["table_change"]) == {"added": ["sales/c.xlsx"], "deleted": ["sales/b.xlsx"]}
    # Every version stays readable as it was: its manifest and its files are never changed.
    assert [r["Region"] for r in rows_of(settings, v2)] == ["north", "south", "east"]
    read = tables.read(output(settings), v4)
    assert read.data.num_rows == 2 and read.manifest.version == 4


def options(rule: str) -> bytes:
    return json.dumps({"versions": "table", "schema_changes": rule}).encode()


def test_evolve_unions_the_columns_and_widens_a_disagreeing_type(settings: LocalSettings) -> None:
    drop(settings, "sales/sheetdrop.json", options("evolve"))
    drop(settings, "sales/a.xlsx", orders(("north", 1.5)))
    run(settings)
    drop(settings, "sales/b.xlsx", workbook({"Orders": [["Region", "Amount", "Discount"], ["east", 2, 0.5]]}))
    drop(settings, "sales/c.xlsx", workbook({"Orders": [["Region", "Amount"], ["west", "n/a"]]}))
    assert [r.status for r in run(settings)] == ["completed", "completed"]
    b, c = versions(settings, "sales_orders")[1:]
    assert b.tags["schema_change"] == "added Discount (float64)"
    assert json.loads(b.tags["schema"]) == {"Region": "string", "Amount": "float64", "_source_blob": "string",
                                            "_source_etag": "string", "Discount": "float64"}
    # Amount is text in c: the table reads it as text (each file's values cast), Discount is null where absent.
    assert json.loads(c.tags["schema"])["Amount"] == "string"
    read = tables.read(output(settings), c)
    assert sorted(zip(read.data["_source_blob"].to_pylist(), read.data["Amount"].to_pylist(),
                      read.data["Discount"].to_pylist(), strict=True)) == [
        ("sales/a.xlsx", "1.5", None), ("sales/b.xlsx", "2", 0.5), ("sales/c.xlsx", "n/a", None)]


def test_fail_fails_a_workbook_whose_columns_differ_from_the_tables_and_leaves_the_table(
        settings: LocalSettings) -> None:
    drop(settings, "sales/sheetdrop.json", options("fail"))
    drop(settings, "sales/a.xlsx", orders(("north", 1.5)))
    run(settings)
    failed = drop_and_run(settings, "sales/b.xlsx",
                          workbook({"Orders": [["Region", "Amount", "Discount"], ["east", 2.5, 0.5]]}))
    assert failed.status == "failed"
    assert failed.error == ("schema: sales_orders: added Discount (float64) (the folder's options say "
                            "\"schema_changes\": \"fail\"; change them to \"evolve\" to accept the new columns)")
    [only] = versions(settings, "sales_orders")
    assert only.tags["table_version"] == "1"
    assert [name for name in output(settings).list_blob_names(name_starts_with="tables/sales_orders/")
            if not name.startswith("tables/sales_orders/segments/")] == [
        "tables/sales_orders/1/MLTable", "tables/sales_orders/1/manifest.json"]
    # Same columns: accepted.
    assert drop_and_run(settings, "sales/c.xlsx", orders(("west", 3.5))).status == "completed"
    assert versions(settings, "sales_orders")[-1].tags["table_sources"] == "2"


def test_rescue_keeps_the_tables_types_and_rescues_what_does_not_fit(settings: LocalSettings) -> None:
    drop(settings, "sales/sheetdrop.json", options("rescue"))
    drop(settings, "sales/a.xlsx", orders(("north", 1.5)))
    run(settings)
    assert drop_and_run(settings, "sales/b.xlsx", orders(("east", "n/a"), ("up", 4.5))).status == "completed"
    latest = versions(settings, "sales_orders")[-1]
    assert json.loads(latest.tags["schema"])["Amount"] == "float64"
    rows = rows_of(settings, latest)
    assert [(r["_source_blob"], r["Amount"], r.get("_rescued_data")) for r in rows] == [
        ("sales/a.xlsx", 1.5, None), ("sales/b.xlsx", None, '{"Amount": "n/a"}'), ("sales/b.xlsx", 4.5, None)]


def test_a_sheet_some_workbooks_have_is_its_own_table_and_leaves_with_its_workbook(settings: LocalSettings) -> None:
    drop(settings, "sales/sheetdrop.json", TABLE.encode())
    drop(settings, "sales/a.xlsx", workbook({"Orders": [["Region", "Amount"], ["n", 1.5]],
                                             "Targets": [["Region", "Target"], ["n", 100]]}))
    drop(settings, "sales/b.xlsx", orders(("east", 2.5)))
    assert [r.status for r in run(settings)] == ["completed", "completed"]
    assert versions(settings, "sales_targets")[-1].tags["table_sources"] == "1"
    assert versions(settings, "sales_orders")[-1].tags["table_sources"] == "2"
    # a overwritten without Targets: its rows leave that table (a new version with no rows), Orders keeps them.
    drop_and_run(settings, "sales/a.xlsx", orders(("n", 9.5)))
    targets = versions(settings, "sales_targets")[-1]
    assert (targets.tags["table_version"], targets.tags["rows"], targets.tags["table_sources"]) == ("2", "0", "0")
    # An empty table is one parquet file of no rows with the table's columns: what a registration lists exists.
    (empty,) = tables.files(output(settings), tables.manifest(output(settings), targets))
    read = pq.read_table(io.BytesIO(output(settings).get_blob_client(empty.path).download_blob().readall()))
    assert (read.num_rows, read.schema.names, str(read.schema.field("Target").type)) == (
        0, ["Region", "Target", "_source_blob", "_source_etag"], "int64")
    assert tables.read(output(settings), targets).data.num_rows == 0
    # Rows come back with a workbook that has the sheet; the empty file goes.
    drop_and_run(settings, "sales/c.xlsx", workbook({"Targets": [["Region", "Target"], ["s", 7]]}))
    targets = versions(settings, "sales_targets")[-1]
    assert [r["Target"] for r in rows_of(settings, targets)] == [7]
    assert len(tables.files(output(settings), tables.manifest(output(settings), targets))) == 1
    assert [r["Amount"] for r in rows_of(settings, versions(settings, "sales_orders")[-1])] == [9.5, 2.5]


def test_switching_a_per_file_folder_keeps_its_history_and_starts_the_table_from_each_workbooks_latest(
        settings: LocalSettings) -> None:
    a1 = drop(settings, "sales/a.xlsx", orders(("north", 1.5)))
    b1 = drop(settings, "sales/b.xlsx", orders(("east", 2.5)))
    run(settings)
    a2 = drop(settings, "sales/a.xlsx", orders(("north", 5.5)))
    run(settings)
    per_file = versions(settings, "sales")  # one-sheet workbooks, per file: the bare folder name
    assert [v.tags["source_etag"] for v in per_file] == [a1, b1, a2]

    drop(settings, "sales/sheetdrop.json", TABLE.encode())
    c1 = drop(settings, "sales/c.xlsx", orders(("west", 3.5)))
    assert [r.status for r in run(settings)] == ["completed"]
    assert versions(settings, "sales") == per_file  # the per-file history stays as it was
    [first] = versions(settings, "sales_orders")
    assert [(r["_source_blob"], r["_source_etag"], r["Amount"]) for r in rows_of(settings, first)] == [
        ("sales/a.xlsx", a2, 5.5), ("sales/b.xlsx", b1, 2.5), ("sales/c.xlsx", c1, 3.5)]
    # The earlier outputs were copied with the source columns added; the per-file parquet is untouched.
    assert "_source_blob" not in pq.read_table(io.BytesIO(
        output(settings).get_blob_client(per_file[-1].relative_path).download_blob().readall())).column_names


def test_the_studio_shows_a_table_version_as_one_table(settings: LocalSettings) -> None:
    from starlette.testclient import TestClient

    from sheetdrop_local.studio.app import create_app

    drop(settings, "sales/sheetdrop.json", TABLE.encode())
    drop(settings, "sales/a.xlsx", orders(("north", 1.5), ("south", 2.5)))
    drop(settings, "sales/b.xlsx", orders(("east", 3.5)))
    run(settings)
    studio = TestClient(create_app(settings), base_url="http://localhost")
    page = studio.get("/datasets/sales_orders/2")
    assert page.status_code == 200, page.text
    assert "table version 2: 3 rows, 4 columns, 2 workbooks in 2 files" in page.text
    files = page.text.split('id="table-files"')[1].split("</table>")[0]
    assert "sales/a.xlsx" in files and "sales/b.xlsx" in files
    preview = page.text.split('id="preview"')[1].split("</table>")[0]
    assert all(value in preview for value in ("north", "south", "east", "_source_blob"))


def test_the_studio_snippets_load_a_table_version_as_one_table(settings: LocalSettings) -> None:
    from sheetdrop_local.readmodel import locations
    from sheetdrop_local.studio import snippets

    drop(settings, "sales/sheetdrop.json", TABLE.encode())
    drop(settings, "sales/a.xlsx", orders(("north", 1.5), ("south", 2.5)))
    drop(settings, "sales/b.xlsx", workbook({"Orders": [["Region", "Amount", "Note"], ["east", 3, "late"]]}))
    run(settings)
    (latest,) = [v for v in versions(settings, "sales_orders") if v.version == 2]
    service = locations.quick_service(settings)
    where = locations.location(settings, latest, service)
    patterns = tables.manifest(output(settings), latest).patterns()
    expected = sorted((r["Region"], float(r["Amount"])) for r in rows_of(settings, latest))
    for snippet in (snippets.pandas_snippet(settings, where, patterns),
                    snippets.polars_snippet(settings, where, patterns)):
        scope: dict[str, object] = {}
        exec(compile(snippet, "snippet", "exec"), scope)
        frame = scope["df"]
        loaded = frame if hasattr(frame, "iloc") else frame.to_pandas()  # type: ignore[attr-defined]
        assert {"Region", "Amount", "Note", "_source_blob"} <= set(loaded.columns)
        assert sorted(zip(loaded["Region"], map(float, loaded["Amount"]), strict=True)) == expected
