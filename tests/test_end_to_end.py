"""Drop → dev host → function → local pipeline run → parquet in the output container → registry.

Real Azurite, the real function from function_app.py, the real step in a subprocess.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import backend, db, registry, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.mounts import MOUNT_LAYOUTS
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings, load_local_settings


def upload(settings: LocalSettings, name: str, data: bytes) -> str:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    return container.get_blob_client(name).upload_blob(data, overwrite=True)["etag"]


def run_all(settings: LocalSettings) -> list[runstore.Run]:
    runner = LocalRunner.from_settings(settings)
    done = []
    while (run := runner.run_next()) is not None:
        done.append(run)
    return done


@pytest.mark.parametrize("layout", MOUNT_LAYOUTS)
def test_sample_becomes_registered_datasets_readable_from_the_output_container(env: dict[str, str],
                                                                              layout: str) -> None:
    """Under today's common-runtime mount layout and the legacy one alike: the step takes its
    output's datastore path from the run, so the registered path is the same."""
    settings = load_local_settings({**env, "LOCAL_MOUNT_LAYOUT": layout})
    backend.install(settings)
    assert settings.mount_layout == layout
    host = DevHost(settings)  # watching from now on: it announces what is written from now on
    etag = upload(settings, "sales/2026-q3.xlsx", SAMPLE.read_bytes())
    assert host.scan_once() == 1
    [run] = run_all(settings)
    assert run.status == "completed", run.error
    assert run.metrics["rows"] == 250 and run.metrics["sheets"] == 3
    argv = Path(run.log_path or "").read_text().splitlines()[0]  # the argv the runner started the step with
    expected_mount = f"/mounts/workspaceblobstore/azureml/{run.step_run_id}/extracted " if layout == "legacy" \
        else f"/cr/j/{run.step_run_id}/cap/data-capability/wd/extracted "
    assert expected_mount in argv
    # No input mount: the step reads the version itself; the blob's name is in its source_version only.
    assert argv.count("2026-q3") == 1 and "%22sales/2026-q3.xlsx%22" in argv

    service = blob_service(settings.storage)
    out = service.get_container_client(settings.local_output_container)
    names = sorted(b.name for b in out.list_blobs())
    prefix = f"azureml/{run.step_run_id}/extracted"
    assert names == [f"{prefix}/orders.parquet", f"{prefix}/products.parquet", f"{prefix}/targets.parquet"]

    conn = db.connect(settings.state_dir)
    versions = {v.name: v for v in registry.list_versions(conn)}
    assert set(versions) == {"sales_orders", "sales_products", "sales_targets"}
    orders = versions["sales_orders"]
    assert (orders.version, orders.datastore, orders.relative_path) == (1, "workspaceblobstore",
                                                                        f"{prefix}/orders.parquet")
    assert {k: orders.tags[k] for k in ("source_container", "source_blob", "source_etag", "run_id", "sheet", "rows",
                                        "columns")} == {
        "source_container": settings.input_container, "source_blob": "sales/2026-q3.xlsx", "source_etag": etag,
        "run_id": run.run_id, "sheet": "Orders", "rows": "240", "columns": "8"}

    # The values read back from storage are the workbook's values (openpyxl as the reference reader).
    table = registry.load_table(orders, service, settings.local_output_container)
    data = pq.read_table(io.BytesIO(out.get_blob_client(f"{prefix}/orders.parquet").download_blob().readall()))
    assert table.equals(data)
    sheet = openpyxl.load_workbook(SAMPLE, read_only=True)["Orders"]
    expected = list(sheet.iter_rows(values_only=True))
    # Header names are made safe for Spark consumers ("Order ID" → "Order_ID").
    assert table.column_names == [str(h).replace(" ", "_") for h in expected[0]]
    for got, want in zip(table.to_pylist(), expected[1:], strict=True):
        got = list(got.values())
        assert got[:5] + got[6:] == list(want[:5] + want[6:])
        assert got[5] == pytest.approx(want[5])
    # A column mixing numbers and text became text, and the run did not crash on it.
    targets = registry.load_table(versions["sales_targets"], service, settings.local_output_container)
    assert targets.column("September").to_pylist()[3] == "tbd"


def test_second_workbook_in_the_folder_is_version_two(settings: LocalSettings) -> None:
    host = DevHost(settings)
    upload(settings, "sales/2026-q3.xlsx", SAMPLE.read_bytes())
    host.scan_once()
    run_all(settings)
    upload(settings, "sales/2026-q4.xlsx", SAMPLE.read_bytes())
    assert host.scan_once() == 1
    [run] = run_all(settings)
    assert run.status == "completed"
    latest = registry.get(db.connect(settings.state_dir), "sales_orders")
    assert latest.version == 2 and latest.tags["source_blob"] == "sales/2026-q4.xlsx"
    assert latest.run_id == run.run_id


def test_non_workbooks_make_no_run_and_are_not_looked_at_again(settings: LocalSettings) -> None:
    upload(settings, "sales/readme.txt", b"hello")
    upload(settings, "sales/~$2026-q3.xlsx", b"lock")
    host = DevHost(settings)
    assert host.scan_once() == 2
    assert host.scan_once() == 0
    assert run_all(settings) == []


def test_host_restart_neither_repeats_nor_misses_a_blob(settings: LocalSettings) -> None:
    upload(settings, "sales/a.xlsx", SAMPLE.read_bytes())
    assert DevHost(settings).scan_once() == 1
    # The host is down while two more files arrive, one of them a new version of a known blob.
    upload(settings, "sales/b.xlsx", SAMPLE.read_bytes())
    upload(settings, "sales/a.xlsx", SAMPLE.read_bytes() + b"")
    restarted = DevHost(settings)
    assert restarted.scan_once() == 2
    assert restarted.scan_once() == 0
    runs = runstore.list_runs(db.connect(settings.state_dir))
    assert sorted(r.source_blob for r in runs) == ["sales/a.xlsx", "sales/a.xlsx", "sales/b.xlsx"]
    assert len({(r.source_blob, r.source_etag) for r in runs}) == 3


def test_step_failure_is_a_failed_run_with_its_log_and_the_input_untouched(settings: LocalSettings) -> None:
    fake = b"order,amount\n1,2\n"
    etag = upload(settings, "sales/export.xlsx", fake)
    DevHost(settings).scan_once()
    [run] = run_all(settings)
    assert run.status == "failed"
    assert run.error and run.error.startswith("not-a-workbook: ")
    log_text = Path(run.log_path).read_text(encoding="utf-8")
    assert "error: not-a-workbook:" in log_text and "--output_datastore workspaceblobstore" in log_text
    blob = blob_service(settings.storage).get_blob_client(settings.input_container, "sales/export.xlsx")
    assert blob.get_blob_properties().etag == etag and blob.download_blob().readall() == fake
    assert registry.list_versions(db.connect(settings.state_dir)) == []


@pytest.mark.parametrize("step_api", ["azureml", "azureml-v2"])
def test_a_version_replaced_before_its_run_read_it_is_superseded_and_the_newer_run_converts_it(
        env: dict[str, str], step_api: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The race: submitted for one version, the blob overwritten before the step reads it. The runner reads
    nothing (AzureML mounts nothing), so only the step's own etag check can tell."""
    settings = load_local_settings({**env, "LOCAL_STEP_API": step_api})
    backend.install(settings)
    first = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    assert DevHost(settings).scan_once() == 1
    newer_content = (SAMPLE.parent / "sales-2026-q4.xlsx").read_bytes()
    second = upload(settings, "sales/q3.xlsx", newer_content)  # new etag after submission, before the step
    assert DevHost(settings).scan_once() == 1
    old, new = run_all(settings)
    assert (old.source_etag, new.source_etag) == (first, second)
    assert old.status == "superseded", old.error
    assert old.error == (f"superseded: the blob was replaced (etag {second}) before this run read it; nothing "
                         "registered, the run of the newer version converts it")
    assert old.metrics == {"superseded_by_etag": second}
    conn = db.connect(settings.state_dir)
    assert registry.for_run(conn, old.run_id) == []
    out = blob_service(settings.storage).get_container_client(settings.local_output_container)
    assert not [b for b in out.list_blob_names() if old.step_run_id in b]
    # The newer version's run converted the newer content: q4 has a Discount column q3 does not.
    assert new.status == "completed", new.error
    orders = registry.get(conn, "sales_orders")
    assert (orders.run_id, orders.version, orders.tags["source_etag"]) == (new.run_id, 1, second)
    assert "Discount" in registry.load_table(orders, blob_service(settings.storage),
                                             settings.local_output_container).column_names
    # And the read model links the superseded run to it: the run list, `runs show` and the studio.
    assert_superseded_links(settings, old, new, capsys)


def assert_superseded_links(settings: LocalSettings, old: runstore.Run, new: runstore.Run,
                            capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import re

    from starlette.testclient import TestClient

    from sheetdrop_local import cli
    from sheetdrop_local.studio.app import create_app

    assert cli.main(["runs", "--json"]) == 0
    rows = {row["run_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[old.run_id]["status"] == "superseded"
    assert rows[old.run_id]["superseded_by"] == {"etag": new.source_etag, "run_id": new.run_id}
    assert cli.main(["runs"]) == 0
    (line,) = [row for row in capsys.readouterr().out.splitlines() if row.startswith(old.run_id[:8])]
    assert f"superseded by etag {new.source_etag}: run {new.run_id[:8]}" in line
    assert cli.main(["runs", "show", old.run_id[:8]]) == 0
    shown = capsys.readouterr().out
    assert f"  superseded  by etag {new.source_etag}: run {new.run_id} (`sheetdrop runs show {new.run_id[:8]}`)" \
        in shown

    studio = TestClient(create_app(settings), base_url="http://localhost")  # it answers to loopback names
    listing = studio.get("/runs").text
    assert re.search(rf'<a class="newer-run" href="/runs/{new.run_id}"[^>]*>run {new.run_id[:8]}</a>', listing)
    page = studio.get(f"/runs/{old.run_id}").text
    assert f'<a class="newer-run" href="/runs/{new.run_id}">run {new.run_id[:8]}</a> converts it' in page
    assert 'class="status s-superseded"' in page


def test_a_deleted_input_is_reported_as_deleted(settings: LocalSettings) -> None:
    upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    DevHost(settings).scan_once()
    blob_service(settings.storage).get_blob_client(settings.input_container, "sales/q3.xlsx").delete_blob()
    [run] = run_all(settings)
    assert (run.status, run.error) == ("failed", f"input-gone: the blob {settings.input_container}/sales/q3.xlsx was "
                                                 "deleted before this run read it; upload it again to convert it")


def test_running_host_picks_up_a_drop_by_itself(settings: LocalSettings) -> None:
    with DevHost(settings, poll_interval=0.2).running():
        upload(settings, "team/q3.xlsx", SAMPLE.read_bytes())
        conn = db.connect(settings.state_dir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = runstore.list_runs(conn)
            if runs and runs[0].status in ("completed", "failed"):
                break
            time.sleep(0.2)
    assert [r.status for r in runs] == ["completed"]
    assert registry.get(conn, "team_orders").version == 1


def test_one_dev_host_per_state_folder(settings: LocalSettings) -> None:
    from sheetdrop_local.hostlock import HostRunning

    with DevHost(settings, poll_interval=0.2).running():
        second = DevHost(settings)
        with pytest.raises(HostRunning, match="a host is already running for this state folder"):
            second.start()
    DevHost(settings).start().stop()  # free again once the first one stopped
