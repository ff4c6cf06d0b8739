"""How a table's next version follows from its previous one (``sheetdrop_step.table_layout``), on the plan alone:
which segments a version lists, what each one holds, what is copied. Up to 100,000 workbooks, the scale a table
version must stay registrable at (the registrations themselves: tests/aml/test_table_v1.py, tests/aml2/...)."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from sheetdrop_contract.table import Manifest, Segment, TableFile, TableTooLarge
from sheetdrop_step.table_layout import Layout, Plan, plan

SCHEMA = {"Region": "string", "Amount": "float64", "_source_blob": "string", "_source_etag": "string"}


class Table:
    """A table's versions as the planner makes them, its segments kept as the store would (by id)."""

    def __init__(self, layout: Layout | None = None) -> None:
        self.layout = layout or Layout()
        self.latest: Manifest | None = None
        self.segments: dict[str, Segment] = {}
        self.copied = 0  # files copied from earlier segments, over all commits
        self.ids = itertools.count()

    def commit(self, added: list[tuple[str, str]] = (), replaced: set[str] = frozenset(), gone: set[str] = frozenset(),
               size: int = 2_000) -> Plan | None:
        files = [TableFile(f"/tmp/{blob}.parquet", ((blob, etag),), 10, SCHEMA, size) for blob, etag in added]
        described = {ref.id: self.segments[ref.id] for ref in self.latest.segments} if self.latest else {}
        made = plan(self.latest, described, dataset="sales_orders", datastore="ws", added=files,
                    replaced=set(replaced) | {b for b, _ in added}, gone=gone, run_id="r", layout=self.layout,
                    new_id=lambda version: f"v{version}-{next(self.ids)}")
        if made is not None:
            self.segments |= {segment.id: segment for segment in made.segments}
            self.copied += sum(1 for move in made.moves if not move.local and move.origin)
            self.latest = made.manifest
        return made

    def holds(self) -> dict[str, str]:
        """Each blob the latest version holds, with its etag; a blob held twice fails."""
        found = [source for ref in self.latest.segments for f in self.segments[ref.id].files for source in f.sources]
        assert not [blob for blob, n in Counter(b for b, _ in found).items() if n > 1]
        return dict(found)


def test_an_overwrite_replaces_its_workbooks_segment_and_keeps_the_others() -> None:
    table = Table(Layout(segment_files=4, loose_segments=50))
    table.commit([(f"a{i}", "1") for i in range(4)])  # one full segment
    table.commit([(f"b{i}", "1") for i in range(4)])
    first, second = (ref.id for ref in table.latest.segments)
    made = table.commit([("a2", "2")])
    assert made is not None and made.manifest.version == 3
    # b's segment is listed as it was; a's is replaced by a new one of its three other files and the new a2.
    listed = [ref.id for ref in made.manifest.segments]
    assert listed[0] == second and first not in listed
    (new,) = made.segments
    assert sorted(s for f in new.files for s in f.sources) == [("a0", "1"), ("a1", "1"), ("a2", "2"), ("a3", "1")]
    assert sorted(m.origin for m in made.moves if not m.local) == [
        f"tables/sales_orders/segments/{first}/part-0000{i}.parquet" for i in (0, 1, 3)]
    assert [m.origin for m in made.moves if m.local] == ["/tmp/a2.parquet"]
    assert made.manifest.change == {"replaced": ["a2"]}
    assert table.holds()["a2"] == "2" and len(table.holds()) == 8


def test_a_deletion_drops_the_workbooks_rows_and_a_rejected_version_changes_nothing() -> None:
    table = Table(Layout(segment_files=4))
    table.commit([("a", "1"), ("b", "1"), ("c", "1")])
    made = table.commit([("d", "1")], gone={"b"})
    assert made is not None and made.manifest.change == {"added": ["d"], "deleted": ["b"]}
    assert table.holds() == {"a": "1", "c": "1", "d": "1"}
    # Nothing converted and nothing gone (a rejected workbook's run commits nothing): no new version.
    assert table.commit() is None
    assert table.latest.version == 2


def test_an_empty_table_is_one_file_of_no_rows_with_its_columns_until_rows_come_back() -> None:
    table = Table()
    table.commit([("a", "1")])
    made = table.commit(replaced={"a"})  # a overwritten without this sheet
    assert made is not None and made.manifest.rows == 0 and made.manifest.source_count == 0
    ((move,),) = [[m for m in made.moves]]
    assert (move.origin, move.target.sources, move.target.schema) == (None, (), SCHEMA)
    assert made.manifest.schema == SCHEMA and made.manifest.file_count == 1
    table.commit([("b", "1")])
    assert table.latest.file_count == 1 and table.holds() == {"b": "1"}


def test_a_later_version_of_a_blob_in_the_same_batch_wins() -> None:
    table = Table()
    made = table.commit([("a", "1"), ("b", "1"), ("a", "2")])
    assert made is not None and table.holds() == {"a": "2", "b": "1"} and made.manifest.file_count == 2


def test_a_segment_holds_at_most_its_bytes_and_a_larger_file_gets_one_of_its_own() -> None:
    table = Table(Layout(segment_files=1000, segment_bytes=10_000))
    made = table.commit([(f"w{i}", "1") for i in range(10)], size=3_000)
    assert made is not None and [ref.files for ref in made.manifest.segments] == [3, 3, 3, 1]
    made = table.commit([("big", "1")], size=50_000)
    assert made is not None and made.manifest.segments[-1].files == 1


def test_too_many_segments_fail_the_commit_with_the_limit_named() -> None:
    table = Table(Layout(segment_files=2, loose_segments=50, max_segments=3))
    table.commit([(f"w{i}", "1") for i in range(6)])
    with pytest.raises(TableTooLarge, match="would list 4 segments, more than 3"):
        table.commit([("x", "1")])


def test_a_table_at_its_segment_limit_packs_what_is_not_full_rather_than_fail() -> None:
    table = Table(Layout(segment_files=4, loose_segments=50, max_segments=3))
    for i in range(3):
        table.commit([(f"w{i}", "1")])
    made = table.commit([("w3", "1")])  # a fourth segment would be one too many: the four files fit in one
    assert made is not None and [ref.files for ref in made.manifest.segments] == [4]
    assert sorted(table.holds()) == ["w0", "w1", "w2", "w3"]


def test_a_workbook_converted_again_without_the_sheet_is_removed_from_its_table() -> None:
    table = Table()
    table.commit([("a", "1"), ("b", "1")])
    made = table.commit(replaced={"a"})
    assert made is not None and made.manifest.change == {"removed": ["a"]} and table.holds() == {"b": "1"}


def test_small_segments_are_packed_once_there_are_too_many() -> None:
    table = Table(Layout(segment_files=100, loose_segments=10))
    for i in range(10):
        table.commit([(f"w{i}", "1")])
    assert len(table.latest.segments) == 10 and table.copied == 0
    table.commit([("w10", "1")])  # the eleventh small segment: all of them packed into one
    assert [ref.files for ref in table.latest.segments] == [11] and table.copied == 10
    assert len(table.holds()) == 11


@pytest.mark.parametrize("batch", [500, 1])
def test_100000_workbooks_stay_a_few_hundred_segments(batch: int) -> None:
    """A backfill of 100,000 workbooks in batches of 500 (one version a batch), or 2,000 dropped one at a time onto
    98,000 backfilled; then overwrites and deletions spread over the table."""
    layout = Layout()
    table = Table(layout)
    backfilled = 100_000 if batch > 1 else 98_000
    for start in range(0, backfilled, 500):
        table.commit([(f"w{i:06d}", "1") for i in range(start, start + 500)])
    for i in range(backfilled, 100_000):
        table.commit([(f"w{i:06d}", "1")])
    bound = 2 * 100_000 // layout.segment_files + layout.loose_segments + 1
    assert table.latest.source_count == 100_000 and len(table.latest.segments) <= bound
    copied_before = table.copied
    rng = random.Random(7)
    for step in range(300):
        blob = f"w{rng.randrange(100_000):06d}"
        made = table.commit([(blob, "2")]) if step % 3 else table.commit(gone={blob})
        # One overwrite or deletion copies at most the rest of one segment (and a packing of the small ones).
        assert made is None or sum(1 for m in made.moves if not m.local and m.origin) <= \
            layout.segment_files + layout.loose_segments * layout.segment_files // 2
        assert len(table.latest.segments) <= bound
    assert 99_800 <= table.latest.source_count <= 100_000 and len(table.holds()) == table.latest.source_count
    assert table.latest.patterns()[0].startswith("tables/sales_orders/segments/")
    print(f"batch {batch}: {len(table.latest.segments)} segments (bound {bound}); files copied: "
          f"{copied_before} building, {table.copied - copied_before} over 300 overwrites and deletions")
