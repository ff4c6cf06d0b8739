"""A workbook deleted from a table-mode folder makes a new table version by itself: the app's timer (the real
sweep function, invoked by the dev host as the Functions host would) finds it gone among the workbooks it noted, runs
its last version again, and that run commits the folder's tables without it. Real Azurite, runner and step."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from sheetdrop.storage import blob_service
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings
from sheetdrop_local.studio.app import create_app
from test_table_mode import TABLE, drop, orders, rows_of, run, versions, workbook


def sweep_and_run(settings: LocalSettings) -> list[str]:
    DevHost(settings).run_timer()
    runner = LocalRunner.from_settings(settings)
    done = []
    while (ended := runner.run_next()) is not None:
        done.append(ended.status)
    return done


def delete(settings: LocalSettings, name: str) -> None:
    blob_service(settings.storage).get_container_client(settings.input_container).delete_blob(name)


def test_a_deletion_alone_makes_a_version_without_the_workbooks_rows(settings: LocalSettings) -> None:
    drop(settings, "sales/sheetdrop.json", TABLE.encode())
    a1 = drop(settings, "sales/a.xlsx", orders(("north", 1.5)))
    drop(settings, "sales/b.xlsx", orders(("east", 2.5)))
    assert [r.status for r in run(settings)] == ["completed", "completed"]
    assert sweep_and_run(settings) == []  # nothing deleted: no run

    delete(settings, "sales/b.xlsx")
    assert sweep_and_run(settings) == ["completed"]
    latest = versions(settings, "sales_orders")[-1]
    assert (latest.tags["table_version"], latest.tags["table_sources"]) == ("3", "1")
    assert json.loads(latest.tags["table_change"]) == {"deleted": ["sales/b.xlsx"]}
    assert [(r["_source_blob"], r["_source_etag"], r["Region"]) for r in rows_of(settings, latest)] == [
        ("sales/a.xlsx", a1, "north")]
    # Once: the next sweeps run nothing more.
    assert sweep_and_run(settings) == [] and len(versions(settings, "sales_orders")) == 3
    # The version only dropped rows: it names no source workbook, and reads as the table it is.
    assert "source_blob" not in latest.tags and latest.tags["sheet"] == "Orders"
    studio = TestClient(create_app(settings), base_url="http://localhost")
    page = studio.get("/datasets/sales_orders/3")
    assert page.status_code == 200 and "1 workbooks in 1 files" in page.text, page.text
    assert studio.get("/datasets").status_code == 200 and studio.get("/runs").status_code == 200

    # Uploaded again, then the whole folder deleted with its sheetdrop.json: still a table's workbooks (the note
    # keeps the options their runs were asked for), and the table is left empty.
    drop(settings, "sales/b.xlsx", orders(("west", 4.0)))
    assert [r.status for r in run(settings)] == ["completed"]
    for name in ("sales/a.xlsx", "sales/b.xlsx", "sales/sheetdrop.json"):
        delete(settings, name)
    # One run for the folder (not one per workbook deleted); it commits both deletions.
    assert sweep_and_run(settings) == ["completed"]
    assert sweep_and_run(settings) == []
    five = versions(settings, "sales_orders")
    assert [v.tags["table_version"] for v in five] == ["1", "2", "3", "4", "5"]
    assert (five[-1].tags["rows"], five[-1].tags["table_sources"]) == ("0", "0")
    assert json.loads(five[-1].tags["table_change"]) == {"deleted": ["sales/a.xlsx", "sales/b.xlsx"]}


def test_a_per_file_folders_deletion_runs_nothing(settings: LocalSettings) -> None:
    drop(settings, "plain/a.xlsx", workbook({"Orders": [["Region", "Amount"], ["n", 1.0]]}))
    assert [r.status for r in run(settings)] == ["completed"]
    delete(settings, "plain/a.xlsx")
    assert sweep_and_run(settings) == []
