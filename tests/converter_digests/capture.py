"""A pytest plugin that records every workbook the tests convert, for the digest test
(``tests/test_converter_digests.py``): the workbook's bytes into ``workbooks.tar.xz`` and the call
into ``captured.json`` (``cases.py`` reads both). Run once over the converter's tests, on the code
whose output the digests pin:

    .venv/bin/python -m pytest -q -p tests.converter_digests.capture tests/test_convert*.py \
        tests/test_options_*.py tests/test_xlsb.py

Tests write their workbooks at run time (xlsxwriter, openpyxl, the BIFF and BIFF12 writers in
``tests/workbooks``); kept as they were written, the digest test converts the very same bytes on every
run, whatever the generators become. Nothing else is changed: the test's own call runs as it would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.converter_digests.cases import CAPTURED, pack, unpack

_calls: dict[str, dict[str, Any]] = {}
_files: dict[str, bytes] = {}
_current: list[str] = [""]


def content_key(data: bytes) -> str:
    """The workbook's content, less what a writer stamps with the time (``docProps/``): the same
    generator run twice gives the same key."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            for info in sorted(package.infolist(), key=lambda i: i.filename):
                if not info.filename.startswith("docProps/"):
                    digest.update(info.filename.encode() + b"\0" + package.read(info) + b"\0")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        digest = hashlib.sha256(data)  # not a zip, or a damaged one: its bytes as they are
    return digest.hexdigest()[:20]


def pytest_runtest_setup(item: pytest.Item) -> None:
    _current[0] = item.nodeid


def pytest_configure(config: pytest.Config) -> None:
    from sheetdrop_step import converter as entry

    real = entry.convert_workbook

    def recording(src: Path, outdir: Path, **kwargs: Any) -> Any:
        src = Path(src)
        if _timed(kwargs.get("limits")):
            return real(src, outdir, **kwargs)
        data = src.read_bytes()
        key = content_key(data)
        stored = f"{key}{src.suffix.lower()}"
        _files.setdefault(stored, data)
        call = {"workbook": stored, "source": kwargs.get("source") or src.name,
                "include_hidden": kwargs.get("include_hidden", False), "workers": kwargs.get("workers"),
                "limits": _changed(kwargs.get("limits")), "options": _options(kwargs.get("options")),
                "previous": kwargs.get("previous") or {}}
        name = hashlib.sha256(json.dumps(call, sort_keys=True).encode()).hexdigest()[:12]
        _calls.setdefault(name, {**call, "test": _current[0]})
        return real(src, outdir, **kwargs)

    entry.convert_workbook = recording


def _timed(limits: Any) -> bool:
    """A call whose time bound is below what a conversion takes (a test of the stop itself): what it
    gives depends on the machine's speed, so no digest pins it."""
    changed = _changed(limits)
    return changed.get("timeout_seconds", 60) < 10 or "time_base_seconds" in changed


def _changed(limits: Any) -> dict[str, Any]:
    if limits is None:
        return {}
    default = type(limits)()
    return {f.name: getattr(limits, f.name) for f in dataclasses.fields(limits)
            if getattr(limits, f.name) != getattr(default, f.name)}


def _options(options: Any) -> dict[str, Any] | None:
    if options is None:
        return None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(options).items()}


def pytest_unconfigure(config: pytest.Config) -> None:
    if _calls and os.environ.get("PYTEST_XDIST_WORKER") is None:
        old = json.loads(CAPTURED.read_text(encoding="utf-8")) if CAPTURED.exists() else {}
        CAPTURED.write_text(json.dumps({**old, **_calls}, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        pack({**_files, **unpack()})
