"""Byte-identical parquet while the converter version stays: every case of ``converter_digests/cases.py``
(the sample workbooks, ``tests/workbooks``, the benchmark's shapes, the workbooks the converter's tests
write, each as given and with the finance folder's options) converted, and the sha256 of each parquet
file (or the rejection) compared with ``converter_digests/digests.json``."""

from __future__ import annotations

import json
from pathlib import Path

from sheetdrop_step.converter import CONVERTER_VERSION
from tests.converter_digests.cases import DIGESTS, compute

#: The version the digests were made with: output may change only with a new one (and new digests).
DIGESTS_VERSION = "3.0.0"


def test_the_same_workbooks_give_the_same_parquet_bytes(tmp_path: Path) -> None:
    assert CONVERTER_VERSION == DIGESTS_VERSION, (
        "a new converter version: write its digests (python -m tests.converter_digests.cases --write) and set "
        "DIGESTS_VERSION")
    expected = json.loads(DIGESTS.read_text(encoding="utf-8"))
    found = compute(tmp_path)
    assert sorted(found) == sorted(expected), "the cases changed: write the digests again on unchanged code"
    files = sum(len(result.get("parquet", {})) for result in expected.values())
    assert files > 300
    changed = {name: {"expected": expected[name], "found": found[name]} for name in expected
               if found[name] != expected[name]}
    assert not changed, json.dumps(changed, indent=1, ensure_ascii=False)
