"""Many workbooks through long-lived reader processes (``convert_many``): each converted to the byte as
``convert_workbook`` converts it alone, one process for many workbooks, and a hostile workbook costing only its
own result — the reader that died on it replaced, the others converted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sheetdrop_step.converter import Limits, Workbook, WorkbookRejected, convert_many, convert_workbook, reader_count
from sheetdrop_step.converter._reading.pool import ReaderProcess
from tests.test_convert_reject import _far_cell_xlsx, small_xlsx

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_each_workbook_is_converted_as_convert_workbook_converts_it_alone(tmp_path: Path) -> None:
    books = [SAMPLES / "sales-2026-q3.xlsx", SAMPLES / "sales-2026-q4.xlsx", SAMPLES / "finance/q3-2026-report.xlsx",
             small_xlsx(tmp_path / "small.xlsx")]
    alone = {}
    for book in books:
        convert_workbook(book, tmp_path / "alone" / book.stem)
        alone[book.stem] = digests(tmp_path / "alone" / book.stem)
    results = dict((w.key, r) for w, r in convert_many(
        [Workbook(b, tmp_path / "many" / b.stem, key=b.stem) for b in books], readers=2))
    assert set(results) == set(alone)
    for stem, result in results.items():
        assert isinstance(result, list), result
        assert [s.path.parent.name for s in result] == [stem] * len(result)
        assert digests(tmp_path / "many" / stem) == alone[stem]


def test_one_process_reads_many_workbooks(tmp_path: Path, temp: Path) -> None:
    reader = ReaderProcess()
    try:
        for i in range(4):
            converted = convert_workbook(small_xlsx(tmp_path / f"w{i}.xlsx"), tmp_path / "out" / str(i), reader=reader)
            assert [s.rows for s in converted] == [1]
        assert reader.started == 1
        # Its jobs' staging folders in its own, each removed once its files are moved.
        assert [p.name for p in temp.glob("sheetdrop-staging-*/job-*")] == []
    finally:
        reader.close()
    assert not list(temp.iterdir())


def test_a_dead_reader_costs_its_workbook_only_and_is_replaced(tmp_path: Path) -> None:
    # With the cell-count guard lifted calamine tries to allocate a 17-billion-cell range and aborts the
    # process (tests/test_convert_reject.py): that workbook is rejected, and the next one read by a new process.
    limits = Limits(max_cells=10**12, max_memory_bytes=2 * 1024**3)
    reader = ReaderProcess()
    try:
        convert_workbook(small_xlsx(tmp_path / "before.xlsx"), tmp_path / "before", limits=limits, reader=reader)
        with pytest.raises(WorkbookRejected) as info:
            convert_workbook(_far_cell_xlsx(tmp_path / "far.xlsx"), tmp_path / "far", limits=limits, reader=reader)
        assert info.value.code == "too-large" and "2048 MiB limit (SHEETDROP_READER_MEMORY_MB)" in info.value.reason
        after = convert_workbook(small_xlsx(tmp_path / "after.xlsx"), tmp_path / "after", limits=limits, reader=reader)
        assert [s.rows for s in after] == [1]
        assert reader.started == 2
    finally:
        reader.close()


def test_a_reader_over_its_time_limit_is_killed_and_replaced(tmp_path: Path) -> None:
    reader = ReaderProcess()
    try:
        with pytest.raises(WorkbookRejected) as info:
            convert_workbook(SAMPLES / "sales-2026-q3.xlsx", tmp_path / "q3", limits=Limits(timeout_seconds=0.001),
                             reader=reader)
        assert info.value.code == "too-large"
        assert "longer than the 0.001 s limit (SHEETDROP_READER_TIMEOUT_S)" in info.value.reason
        assert convert_workbook(small_xlsx(tmp_path / "next.xlsx"), tmp_path / "next", reader=reader)
        assert reader.started == 2
    finally:
        reader.close()


def test_hostile_workbooks_in_a_batch_cost_only_their_own_results(tmp_path: Path) -> None:
    limits = Limits(max_cells=10**12, max_memory_bytes=2 * 1024**3)
    csv = tmp_path / "renamed.xlsx"
    csv.write_text("id,amount\n1,2\n")
    good = [small_xlsx(tmp_path / f"good{i}.xlsx") for i in range(5)]
    books = [good[0], _far_cell_xlsx(tmp_path / "far.xlsx"), good[1], csv, *good[2:]]
    results = {w.key: r for w, r in convert_many(
        [Workbook(b, tmp_path / "out" / b.stem, key=b.stem) for b in books], limits=limits, readers=2)}
    assert isinstance(results.pop("far"), WorkbookRejected)
    assert getattr(results.pop("renamed"), "code", None) == "not-a-workbook"
    assert not (tmp_path / "out" / "far").exists() and not (tmp_path / "out" / "renamed").exists()
    assert {k: [s.rows for s in r] for k, r in results.items()} == {b.stem: [1] for b in good}


def test_a_failure_that_is_not_the_workbooks_is_its_result_too(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the output folder should be")
    books = [Workbook(small_xlsx(tmp_path / "a.xlsx"), blocked / "a", key="a"),
             Workbook(small_xlsx(tmp_path / "b.xlsx"), tmp_path / "out" / "b", key="b")]
    results = {w.key: r for w, r in convert_many(books, readers=1)}
    assert isinstance(results["a"], OSError) and isinstance(results["b"], list)


def test_readers_at_once_fit_the_cores_and_the_memory() -> None:
    limits = Limits(max_memory_bytes=6 * 1024**3)
    assert reader_count(limits, cores=4, memory=14 * 1024**3) == 2  # a DS3_v2: 4 cores, 14 GiB
    assert reader_count(limits, cores=2, memory=24 * 1024**3) == 2
    assert reader_count(limits, cores=8, memory=4 * 1024**3) == 1
