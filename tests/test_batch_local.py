"""A batch run on the local runner: many pinned versions in one run of the batch step (one step process, the
converter's long-lived readers on the usable cores), each version's outcome its own. Real Azurite, the real
runner, the real step in a subprocess; what is checked is what the run store, the registry and storage hold."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE
from sheetdrop.storage import blob_service
from sheetdrop.submit import BatchRequest
from sheetdrop.trigger import BlobVersion, build_request
from sheetdrop_contract import batch as batch_contract
from sheetdrop_contract import read_options
from sheetdrop_local import db, registry, runstore
from sheetdrop_local.backend import LocalBackend
from sheetdrop_local.runstore import RunStatus
from sheetdrop_local.settings import LocalSettings
from test_convert_reject import _far_cell_xlsx
from test_end_to_end import run_all, upload

Q4 = SAMPLE.parent / "sales-2026-q4.xlsx"
FINANCE = SAMPLE.parent / "finance"


def request_for(settings: LocalSettings, name: str, etag: str, dataset: str, options: str = "{}") -> object:
    return build_request(BlobVersion(settings.input_container, name, etag, None), settings, "inv-batch", dataset,
                         read_options=options)


def submit(settings: LocalSettings, versions: list[tuple[str, str, str]], **options: str) -> str:
    requests = tuple(request_for(settings, name, etag, dataset, options.get(name, "{}"))
                     for name, etag, dataset in versions)
    return LocalBackend.from_settings(settings).submit_batch(BatchRequest("batch-1", requests)).run_id


def output(settings: LocalSettings, path: str) -> bytes:
    container = blob_service(settings.storage).get_container_client(settings.local_output_container)
    return container.get_blob_client(path).download_blob().readall()


def test_a_batch_converts_each_version_and_a_hostile_workbook_fails_only_its_own(
        settings: LocalSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The cell-count guard lifted (a step setting, as a deployment could set it): calamine then aborts its process
    # on the far cell, and a new reader takes the next workbook.
    monkeypatch.setenv("SHEETDROP_MAX_CELLS", str(10**12))
    monkeypatch.setenv("SHEETDROP_READER_MEMORY_MB", "2048")
    finance_options = read_options.to_parameter("finance/sheetdrop.json",
                                                (FINANCE / "sheetdrop.json").read_text(encoding="utf-8"))
    pinned = [
        ("sales/q3.xlsx", upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes()), "sales"),
        ("sales/far.xlsx", upload(settings, "sales/far.xlsx", _far_cell_xlsx(tmp_path / "far.xlsx").read_bytes()),
         "sales"),
        ("sales/notes.xlsx", upload(settings, "sales/notes.xlsx", b"id,amount\n1,2\n"), "sales"),
        ("finance/q3.xlsx", upload(settings, "finance/q3.xlsx", (FINANCE / "q3-2026-report.xlsx").read_bytes()),
         "finance"),
        ("sales/q4.xlsx", upload(settings, "sales/q4.xlsx", Q4.read_bytes()), "sales"),
    ]
    run_id = submit(settings, pinned, **{"finance/q3.xlsx": finance_options})
    backend = LocalBackend.from_settings(settings)
    # The same batch again (a resend after a lost answer) is the same run; each version finds it.
    assert submit(settings, pinned) == run_id
    assert [backend.find_runs(settings.input_container, name, etag) for name, etag, _ in pinned] == [[run_id]] * 5

    [run] = run_all(settings)
    assert (run.run_id, run.kind, run.status) == (run_id, "batch", RunStatus.COMPLETED)
    assert {k: v for k, v in run.metrics.items() if k.startswith("versions_")} == {
        "versions_converted": 3, "versions_rejected": 2, "versions_superseded": 0, "versions_failed": 0}
    conn = db.connect(settings.state_dir)
    versions = runstore.batch_versions(conn, run_id)
    assert [(v.source_blob, v.status) for v in versions] == [
        ("sales/q3.xlsx", "completed"), ("sales/far.xlsx", "failed"), ("sales/notes.xlsx", "failed"),
        ("finance/q3.xlsx", "completed"), ("sales/q4.xlsx", "completed")]
    assert versions[1].error.startswith("too-large: reading the workbook needs more memory than the reader's 2048 MiB")
    assert versions[2].error.startswith("not-a-workbook: ")

    # Registered in manifest order, each version under its own folder, tagged with its own blob version and with
    # the batch run that made it; the finance report read with its folder's options.
    made = {v.name: v for v in registry.list_versions(conn)}
    assert {(v.name, v.version) for v in registry.list_versions(conn) if v.name.startswith("sales_orders")} == {
        ("sales_orders", 1), ("sales_orders", 2)}
    orders = registry.get(conn, "sales_orders", 2)
    assert orders.tags["source_blob"] == "sales/q4.xlsx" and orders.tags["run_id"] == run_id
    assert orders.tags["schema_change"] == "added Discount (float64)"
    assert orders.run_id == versions[4].run_id
    assert orders.relative_path == f"azureml/{run.step_run_id}/extracted/4/orders.parquet"
    table = pq.read_table(io.BytesIO(output(settings, orders.relative_path)))
    assert table.num_rows == 260 and "Discount" in table.column_names
    finance = made["finance"]
    assert finance.relative_path.endswith("/3/report.parquet") and "_rescued_data" in pq.read_table(
        io.BytesIO(output(settings, finance.relative_path))).column_names
    # A version row shows as its own run would: its metrics, its datasets, the batch's log.
    assert versions[0].metrics["sheets"] == 3 and "orders.parquet:column_types" in versions[0].metrics
    assert versions[0].log_path == run.log_path

    # The outcomes as the step wrote them beside the versions' folders.
    lines = [json.loads(line) for line in output(settings, f"azureml/{run.step_run_id}/extracted/outcomes.jsonl")
             .decode().splitlines()]
    assert [(o["position"], o["source_blob"], o["outcome"], o["code"]) for o in lines] == [
        (0, "sales/q3.xlsx", "converted", None), (1, "sales/far.xlsx", "rejected", "too-large"),
        (2, "sales/notes.xlsx", "rejected", "not-a-workbook"), (3, "finance/q3.xlsx", "converted", None),
        (4, "sales/q4.xlsx", "converted", None)]
    assert lines[4]["datasets"] == [f"sales_{s} (registered by the local runner after upload)"
                                    for s in ("orders", "products", "targets")]


def test_a_version_overwritten_before_the_batch_reads_it_ends_superseded(settings: LocalSettings) -> None:
    first = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    other = upload(settings, "sales/q4.xlsx", Q4.read_bytes())
    run_id = submit(settings, [("sales/q3.xlsx", first, "sales"), ("sales/q4.xlsx", other, "sales")])
    newer = upload(settings, "sales/q3.xlsx", Q4.read_bytes())  # after submission, before the run starts

    [run] = run_all(settings)
    conn = db.connect(settings.state_dir)
    replaced, kept = runstore.batch_versions(conn, run_id)
    assert (run.status, replaced.status, kept.status) == ("completed", "superseded", "completed")
    assert replaced.metrics["superseded_by_etag"] == newer and newer in (replaced.error or "")
    assert registry.for_run(conn, replaced.run_id) == []  # nothing registered for the replaced version
    assert {v.tags["source_blob"] for v in registry.list_versions(conn)} == {"sales/q4.xlsx"}
    assert run.metrics["versions_superseded"] == 1 and run.metrics["versions_converted"] == 1


def test_manifests_stay_within_one_command_line_word() -> None:
    versions = [batch_contract.PinnedVersion("input", f"sales/{'x' * 200} {i}.xlsx", f'"0x8DC{i:010d}"', "sales")
                for i in range(1200)]
    cut = list(batch_contract.batches(versions))
    assert sum(len(b) for b in cut) == 1200 and [v for b in cut for v in b] == versions
    assert all(len(batch_contract.encode_manifest(b)) <= batch_contract.MAX_MANIFEST_CHARS for b in cut)
    assert all(len(b) <= batch_contract.MAX_VERSIONS for b in cut)
    assert batch_contract.parse_manifest(batch_contract.manifest_json(cut[0])) == cut[0]


def test_runs_runs_show_and_the_studio_show_a_batch_with_its_versions_and_filter_by_it(
        settings: LocalSettings, capsys: pytest.CaptureFixture[str]) -> None:
    from starlette.testclient import TestClient

    from sheetdrop_local import cli
    from sheetdrop_local.studio.app import create_app
    from test_cli_read import rows_of
    from test_studio_pages import text

    good = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    bad = upload(settings, "sales/notes.xlsx", b"id,amount\n1,2\n")
    run_id = submit(settings, [("sales/q3.xlsx", good, "sales"), ("sales/notes.xlsx", bad, "sales")])
    run_all(settings)
    versions = runstore.batch_versions(db.connect(settings.state_dir), run_id)

    assert cli.main(["runs"]) == 0
    [row] = rows_of(capsys.readouterr().out)
    assert (row["run"], row["status"], row["blob"], row["reason"]) == (
        run_id[:8], "completed", "batch of 2 versions", "1 converted, 1 rejected")

    assert cli.main(["runs", "--batch", run_id[:8]]) == 0
    listed = rows_of(capsys.readouterr().out)
    assert [(r["run"], r["status"], r["blob"]) for r in listed] == [
        (versions[1].run_id[:8], "failed", f"{settings.input_container}/sales/notes.xlsx"),
        (versions[0].run_id[:8], "completed", f"{settings.input_container}/sales/q3.xlsx")]
    assert listed[0]["reason"].startswith("not-a-workbook: ") and listed[1]["datasets"].startswith("sales_orders:1")

    # By status: the versions in it, a completed batch's failed version among them.
    assert cli.main(["runs", "--status", "failed"]) == 0
    assert [r["blob"] for r in rows_of(capsys.readouterr().out)] == [f"{settings.input_container}/sales/notes.xlsx"]

    assert cli.main(["runs", "show", run_id[:8]]) == 0
    shown = capsys.readouterr().out
    assert "  batch       2 versions: 1 converted, 1 rejected" in shown
    table = shown.split("\nversions\n")[1].split("\n\n")[0]
    assert [(r["version"], r["status"], r["reason"][:15]) for r in rows_of(table)] == [
        ("0", "completed", ""), ("1", "failed", "not-a-workbook:")]
    assert "manifest" in shown and "sales/notes.xlsx" in shown

    assert cli.main(["runs", "show", versions[0].run_id]) == 0
    one = capsys.readouterr().out
    assert f"  in batch    {run_id} (version 0;" in one and "sales_orders:1" in one and "columns of Orders" in one

    client = TestClient(create_app(settings), base_url="http://localhost")  # it answers to loopback names
    page = text(client.get("/runs").text)
    assert "batch of 2 versions" in page and "1 converted, 1 rejected" in page
    filtered = client.get(f"/runs?batch={run_id[:8]}")
    assert filtered.status_code == 200
    assert f"Runs of batch {run_id[:8]}" in text(filtered.text) and "sales/notes.xlsx" in filtered.text
    assert "not-a-workbook" in text(filtered.text)
    detail = text(client.get(f"/runs/{run_id}").text)
    assert "extract batch of 2 versions" in detail and "Versions 1 converted, 1 rejected" in detail
    assert f"Version 0 of batch run {run_id[:8]}" in text(client.get(f"/runs/{versions[0].run_id}").text)
    assert client.get(f"/runs?batch={versions[0].run_id}").status_code == 404


def test_a_batch_cut_short_runs_again_whole_and_registers_each_version_once(settings: LocalSettings) -> None:
    from sheetdrop_local import recovery

    pinned = [("sales/q3.xlsx", upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes()), "sales"),
              ("sales/q4.xlsx", upload(settings, "sales/q4.xlsx", Q4.read_bytes()), "sales")]
    run_id = submit(settings, pinned)
    conn = db.connect(settings.state_dir)
    taken = runstore.take_next(conn)  # a host took it, then died before it ended
    assert taken is not None and taken.run_id == run_id
    assert {v.status for v in runstore.batch_versions(conn, run_id)} == {"running"}
    assert runstore.requeue_interrupted(conn) == 1  # what the next host does first (recovery.py)
    assert {v.status for v in runstore.batch_versions(conn, run_id)} == {"queued"}

    [run] = run_all(settings)
    assert run.status == "completed" and run.attempts == 2 and run.abandoned_attempts == []
    assert sorted((v.name, v.version) for v in registry.list_versions(conn) if v.name == "sales_orders") == [
        ("sales_orders", 1), ("sales_orders", 2)]

    # Storage lost one of its outputs (an Azurite crash): the batch loses its datasets and runs again, whole.
    container = blob_service(settings.storage).get_container_client(settings.local_output_container)
    container.delete_blob(registry.get(conn, "sales_orders", 1).relative_path)
    assert recovery.verify_outputs(conn, blob_service(settings.storage), settings.local_output_container,
                                   {settings.input_datastore: settings.input_container}, since=0) == [run_id]
    assert registry.list_versions(conn) == [] and runstore.get(conn, run_id).status == "queued"
    [again] = run_all(settings)
    assert again.status == "completed" and len(registry.list_versions(conn)) == 6
    assert {v.tags["run_id"] for v in registry.list_versions(conn)} == {run_id}


@pytest.mark.parametrize("step_api", ["azureml", "azureml-v2"])
def test_the_local_runner_runs_a_batch_as_either_cloud_step(env: dict[str, str], step_api: str) -> None:
    from sheetdrop_local import backend
    from sheetdrop_local.settings import load_local_settings

    settings = load_local_settings({**env, "LOCAL_STEP_API": step_api})
    backend.install(settings)
    etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    submit(settings, [("sales/q3.xlsx", etag, "sales")])
    [run] = run_all(settings)
    assert run.status == "completed", run.error
    argv = Path(run.log_path or "").read_text().splitlines()[0]
    # v2: told where its output goes and which context to use, as the batch component's program arguments say.
    assert ("--output_path" in argv, "SHEETDROP_JOB_API=v2" in argv) == ((step_api == "azureml-v2"),) * 2
    assert "--manifest" in argv
    assert {v.relative_path.rsplit("/", 2)[-2] for v in registry.list_versions(db.connect(settings.state_dir))} == {"0"}


def test_a_batch_run_that_fails_fails_each_of_its_versions(settings: LocalSettings, tmp_path: Path) -> None:
    from sheetdrop_local.runner import LocalRunner

    etag = upload(settings, "sales/q3.xlsx", SAMPLE.read_bytes())
    run_id = submit(settings, [("sales/q3.xlsx", etag, "sales")])
    broken = tmp_path / "snapshot"  # a step that dies without a word (not the workbook's fault)
    broken.mkdir()
    (broken / "extract.py").write_text("raise SystemExit(5)\n")
    runner = LocalRunner.from_settings(settings)
    runner.step_dir = broken
    run = runner.run_next()
    assert run is not None and run.status == "failed" and "exited with code 5" in (run.error or "")
    [version] = runstore.batch_versions(db.connect(settings.state_dir), run_id)
    assert version.status == "failed" and version.error == f"the batch run failed: {run.error}"
