"""The digest test's cases (``tests/test_converter_digests.py``): what the converter is given, and the
sha256 of each parquet file it writes (or its rejection) as ``digests.json`` pins it.

The workbooks: every one under ``samples/`` and ``tests/workbooks/``; the benchmark's shapes at a small
row count, read whole and in pieces; and the workbooks the converter's tests write at run time, as they
wrote them (``workbooks.tar.xz``, recorded by ``capture.py`` with each call: ``captured.json``). Each is
converted as given and with the finance folder's options (``samples/finance/sheetdrop.json``). Source
names are fixed: they are written into the parquet metadata.

A change of the converter's output comes with a new ``CONVERTER_VERSION``, and then new digests:

    .venv/bin/python -m tests.converter_digests.cases --write
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sheetdrop_contract.read_options import ReadOptions, parse
from sheetdrop_step.converter import Limits, WorkbookRejected, convert_workbook

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ARCHIVE = HERE / "workbooks.tar.xz"
CAPTURED = HERE / "captured.json"
DIGESTS = HERE / "digests.json"
FINANCE = REPO / "samples" / "finance" / "sheetdrop.json"
FIXED = sorted([*REPO.glob("samples/**/*.xlsx"), *REPO.glob("tests/workbooks/sample.*")])
#: The benchmark's shapes (benchmarks/bench_convert.py SHAPES) at a small row count: name → (rows, sheets,
#: kind). Read in pieces too: the path the benchmark's 100k rows take, with pieces of 64 KiB.
BENCH = {"uniform": (2000, 1, "uniform"), "numeric-text": (2000, 1, "numeric-text"),
         "numeric": (2000, 1, "numeric"), "3-sheets": (700, 3, "uniform"), "id-mixed": (2000, 1, "id-mixed")}
PIECES = {"limits": {"piece_bytes": 64 * 1024}, "workers": 2}


@dataclass
class Case:
    name: str
    workbook: Path
    source: str
    include_hidden: bool = False
    workers: int | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    options: ReadOptions | None = None
    previous: dict[str, dict[str, str]] = field(default_factory=dict)


def _options(data: dict[str, Any] | None) -> ReadOptions | None:
    if data is None:
        return None
    return ReadOptions(**{**data, "include": tuple(data["include"]), "exclude": tuple(data["exclude"])})


def finance() -> ReadOptions:
    return parse(FINANCE.read_text(encoding="utf-8"), "finance/sheetdrop.json")


def cases(workdir: Path) -> list[Case]:
    """Every case, with its workbook written into ``workdir``."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from gen_workbooks import make_workbook
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    found: list[Case] = []
    for path in FIXED:
        name = path.relative_to(REPO).as_posix()
        found += [Case(f"file/{name}", path, path.name),
                  Case(f"file/{name}/finance", path, path.name, options=finance())]
    for shape, (rows, sheets, kind) in BENCH.items():
        path = make_workbook(workdir / "bench" / f"{shape}.xlsx", rows, sheets, kind)
        for how, extra in (("whole", {}), ("pieces", PIECES)):
            found += [Case(f"bench/{shape}/{how}", path, path.name, **extra),
                      Case(f"bench/{shape}/{how}/finance", path, path.name, options=finance(), **extra)]
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(workdir / "captured", filter="data")
    captured = json.loads(CAPTURED.read_text(encoding="utf-8"))
    plain = set()
    for call_name, call in sorted(captured.items()):
        path = workdir / "captured" / "workbooks" / call["workbook"]
        options = _options(call["options"])
        found.append(Case(f"captured/{call_name}", path, call["source"], call["include_hidden"], call["workers"],
                          call["limits"], options, call["previous"]))
        if not (call["include_hidden"] or call["limits"] or call["previous"] or call["workers"]) and (
                options is None or options == ReadOptions()):
            plain.add(call["workbook"])
    for workbook in sorted({call["workbook"] for call in captured.values()}):
        path = workdir / "captured" / "workbooks" / workbook
        if workbook not in plain:
            found.append(Case(f"workbook/{workbook}", path, "book" + path.suffix))
        found.append(Case(f"workbook/{workbook}/finance", path, "book" + path.suffix, options=finance()))
    return found


def convert(case: Case, outdir: Path) -> dict[str, Any]:
    """The case's outputs: each parquet file's sha256, or the rejection."""
    try:
        outputs = convert_workbook(case.workbook, outdir, source=case.source, include_hidden=case.include_hidden,
                                   limits=Limits(**case.limits), workers=case.workers, options=case.options,
                                   previous=case.previous)
    except WorkbookRejected as exc:
        return {"rejected": f"{exc.code}: {exc.reason}"}
    return {"parquet": {o.path.name: hashlib.sha256(o.path.read_bytes()).hexdigest() for o in outputs}}


def compute(workdir: Path) -> dict[str, dict[str, Any]]:
    """Every case converted (a few at once: each conversion is a reader process of its own)."""
    found = cases(workdir)
    with ThreadPoolExecutor(max(2, len(os.sched_getaffinity(0)))) as pool:
        results = pool.map(lambda ic: convert(ic[1], workdir / "out" / str(ic[0])), enumerate(found))
        return {case.name: result for case, result in zip(found, results, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write the digests to {DIGESTS.name}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        digests = compute(Path(tmp))
    text = json.dumps(digests, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if args.write:
        DIGESTS.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def pack(files: dict[str, bytes]) -> None:
    """``workbooks.tar.xz`` holding these files under ``workbooks/``, written the same way every time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(f"workbooks/{name}")
            info.size, info.mode = len(files[name]), 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    import lzma

    ARCHIVE.write_bytes(lzma.compress(buffer.getvalue(), preset=9))


def unpack() -> dict[str, bytes]:
    if not ARCHIVE.exists():
        return {}
    with tarfile.open(ARCHIVE) as archive:
        return {Path(m.name).name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


if __name__ == "__main__":
    main()
