"""Folders whose names fold to the same text never feed one dataset: the first keeps the name, the
others get it with a stable hash of their own path (real Azurite, the real function)."""

from __future__ import annotations

import hashlib

from conftest import SAMPLE
from sheetdrop.storage import blob_service, ensure_container
from sheetdrop_local import db, runstore
from sheetdrop_local.devhost import DevHost
from sheetdrop_local.settings import LocalSettings


def dataset_of_each(settings: LocalSettings, *names: str) -> dict[str, str]:
    """Drop the blobs one after another, each delivered before the next is uploaded."""
    container = ensure_container(blob_service(settings.storage), settings.input_container)
    host = DevHost(settings)
    for name in names:
        container.upload_blob(name, SAMPLE.read_bytes(), overwrite=True)
        assert host.scan_once() == 1
    runs = runstore.list_runs(db.connect(settings.state_dir))
    return {run.source_blob: run.dataset_name for run in runs}


def short(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:8]


def test_case_variants_and_scripts_without_transliteration_get_distinct_names(settings: LocalSettings) -> None:
    names = dataset_of_each(settings, "sales/a.xlsx", "Sales/b.xlsx", "中文文件夹/c.xlsx", "日本語のフォルダ/d.xlsx",
                            "sales/e.xlsx")
    assert names == {
        "sales/a.xlsx": "sales",
        "Sales/b.xlsx": f"sales_{short('Sales')}",
        "中文文件夹/c.xlsx": f"f_{short('中文文件夹')}",
        "日本語のフォルダ/d.xlsx": f"f_{short('日本語のフォルダ')}",
        "sales/e.xlsx": "sales",  # the owner keeps its name
    }


def test_the_name_stays_with_its_folder_whatever_comes_later(settings: LocalSettings) -> None:
    first = dataset_of_each(settings, "Sales/b.xlsx")
    later = dataset_of_each(settings, "sales/a.xlsx", "Sales/c.xlsx")
    assert first == {"Sales/b.xlsx": "sales"}
    assert later["sales/a.xlsx"] == f"sales_{short('sales')}" and later["Sales/c.xlsx"] == "sales"
