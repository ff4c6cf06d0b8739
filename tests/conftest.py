"""Shared fixtures: a real Azurite for the session, and per-test settings on their own containers."""

from __future__ import annotations

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
