"""Shared fixtures: a real Azurite for the session, and per-test settings on their own containers."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import snapshot
from sheetdrop.reconcile import watching_since
from sheetdrop.settings import get_settings
from sheetdrop.trigger import claim_store
from sheetdrop_local import backend
from sheetdrop_local.azurite import Azurite, free_port
from sheetdrop_local.settings import LocalSettings, load_local_settings

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "sales-2026-q3.xlsx"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(
        location=tmp_path_factory.mktemp("azurite"),
        blob_port=free_port(), queue_port=free_port(), table_port=free_port(),
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def step_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The step's snapshot as publish uploads it and the local runner runs it (pipeline.snapshot)."""
    return snapshot.built(tmp_path_factory.mktemp("snapshots"))


@pytest.fixture
def env(azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """App settings for one test: its own state folder and containers, set in the process
    environment too (the blob extension and ``get_settings()`` read it, as in the Functions host)."""
    suffix = uuid.uuid4().hex[:10]
    values = {
        "INPUT_STORAGE": azurite.connection_string,
        "INPUT_CONTAINER": f"input-{suffix}",
        "LOCAL_OUTPUT_CONTAINER": f"output-{suffix}",
        "CLAIMS_CONTAINER": f"claims-{suffix}",
        "SHEETDROP_STATE_DIR": str(tmp_path / "state"),
        "SHEETDROP_BACKEND": "local",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    # The app watches the test's container from its start, as a deployed app does before anything is uploaded:
    # what the test writes is announced (tests of what was there before watching use a container of their own).
    watching_since(claim_store(load_local_settings(values)), values["INPUT_CONTAINER"])
    yield values
    get_settings.cache_clear()


@pytest.fixture
def settings(env: dict[str, str]) -> LocalSettings:
    """The test's settings, with the local backend installed for its state folder (the dev host
    does that when it starts; tests that call the Function directly need it too)."""
    local = load_local_settings(env)
    backend.install(local)
    return local


# The converter's lifetime tests (tests/test_convert_lifetime.py, tests/test_convert_many_lifetime.py).

@pytest.fixture(scope="module")
def workbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workbook whose reading takes a second or two: time to find the reader and kill something."""
    import xlsxwriter  # (not in the AzureML test environments, which load this file too)

    path = tmp_path_factory.mktemp("lifetime") / "rows.xlsx"
    wb = xlsxwriter.Workbook(path, {"constant_memory": True})
    ws = wb.add_worksheet("Rows")
    ws.write_row(0, 0, [f"c{i}" for i in range(12)])
    for r in range(1, 40_000):
        ws.write_row(r, 0, [r, r * 0.5, f"text {r % 97}", r % 3 == 0, r * 7, "x", r, 1.25, r, "y", r, 2])
    wb.close()
    return path


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The temp folder of the processes under test (where their staging folders go), the test's own."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))  # (this process has read TMPDIR already)
    yield folder
