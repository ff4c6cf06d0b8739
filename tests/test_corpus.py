"""The corpus (tests/corpus/: real workbooks from other readers' and writers' public test suites, their
origins and licences in NOTICE.md) converted and compared cell by cell with readers not built on calamine
(tests/corpus/reference.py): every class of difference is one of the converter's documented rules
(tests/corpus/expectations.json, "rules"), and each file differs exactly as recorded there ("files"),
so that a new difference, or one more of a known kind, fails. The files are compared on every usable
core at once (each in a process of its own, with its reader process under it)."""

from __future__ import annotations

import json
import time

from sheetdrop_step.converter import usable_cores
from tests.corpus.compare import EXPECTATIONS, corpus_files, run, summary, unexplained


def test_the_corpus_converts_as_its_expectations_record() -> None:
    recorded = json.loads(EXPECTATIONS.read_text(encoding="utf-8"))
    files = corpus_files()
    start = time.monotonic()
    results = run(files, usable_cores())
    seconds = time.monotonic() - start
    assert len(files) >= 140 and {r.file for r in results} == set(recorded["files"]), (
        "a workbook was added or removed: record the corpus again (python -m tests.corpus.compare "
        "--write-expectations)")
    missing = unexplained(results, recorded["rules"])
    assert not missing, f"differences no rule explains (a converter bug, or a rule to write): {json.dumps(missing)}"
    changed = {}
    for result in results:
        expected = {k: v for k, v in recorded["files"][result.file].items() if k != "examples"}
        if summary(result) != expected:
            changed[result.file] = {"expected": expected, "found": summary(result),
                                    "examples": {k: v["examples"][:3] for k, v in result.differences.items()}}
    assert not changed, json.dumps(changed, indent=1, ensure_ascii=False)
    used = {kind for r in results for kind in r.differences}
    assert set(recorded["rules"]) <= used, f"rules no file needs: {sorted(set(recorded['rules']) - used)}"
    print(f"{len(results)} files in {seconds:.0f} s on {usable_cores()} cores; {sum(r.cells for r in results):,} "
          f"cells compared, {sum(r.matched for r in results):,} the same; {len(recorded['rules'])} rules; "
          f"{sum(r.status == 'rejected' for r in results)} rejected as recorded")
