"""A small run history on Azurite, made by the real function, runner and step: the sample workbook, its
next quarter (a Discount column more, an empty sheet), a CSV named .xlsx (a failed run) and a text
file (skipped). For the tests of what the CLI and the studio show."""

from __future__ import annotations

from conftest import REPO, SAMPLE
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import db, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.runner import LocalRunner
from sheetdrop_local.settings import LocalSettings

Q4 = REPO / "samples" / "sales-2026-q4.xlsx"


def upload(settings: LocalSettings, name: str, data: bytes) -> str:
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    return container.get_blob_client(name).upload_blob(data, overwrite=True)["etag"]


def deliver_and_run(settings: LocalSettings) -> None:
    DevHost(settings).scan_once()
    runner = LocalRunner.from_settings(settings)
    while runner.run_next() is not None:
        pass


def make_history(settings: LocalSettings) -> dict[str, runstore.Run]:
    """The runs by blob name."""
    upload(settings, "sales/2026-q3.xlsx", SAMPLE.read_bytes())
    deliver_and_run(settings)
    upload(settings, "sales/2026-q4.xlsx", Q4.read_bytes())
    deliver_and_run(settings)
    upload(settings, "sales/prices.xlsx", b"sku,price\nA,1\n")
    upload(settings, "sales/readme.txt", b"hello")
    deliver_and_run(settings)
    return {run.source_blob: run for run in runstore.list_runs(db.connect(settings.state_dir))}
