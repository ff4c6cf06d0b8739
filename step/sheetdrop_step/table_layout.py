"""How a table's next version follows from its previous one: which segments it keeps, which it replaces, and what
the new segments hold (pure: no storage; ``sheetdrop_step.tables`` reads and writes what this plans).

The next version is the previous one less the files of the blobs this run converted again (an overwritten blob
replaces its own rows; a workbook that no longer has the sheet leaves the table) or found gone (deleted), plus the
files this run wrote. Segments are immutable, so a segment that holds a dropped blob is replaced by a new segment of
its other files (their bytes copied unchanged), packed with the run's new files.

Why the number of segments stays small: a segment holds at most ``segment_files`` files and ``segment_bytes``
bytes; new segments are filled one after the other, so two consecutive ones together exceed a segment's capacity;
and once more than ``loose_segments`` segments are under half full, they are packed together (each one's files
copied into new, fuller segments). So a version of ``n`` files of ``b`` bytes lists at most about
``2 * max(n / segment_files, b / segment_bytes) + loose_segments`` segments: 251 at 100,000 one-sheet workbooks of
under 2.6 KB of parquet each, 832 at 100,000 of 1 MB each. A version that would list more than ``max_segments``
fails its run with ``table-too-large`` (docs/azureml.md, "A folder as one table", has the measured definition sizes).

What it costs: an overwrite or a deletion copies the rest of its segment (at most ``segment_bytes``); packing copies
the small segments' files, at most ``loose_segments`` times half a segment, once every ``loose_segments`` small commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sheetdrop_contract import table
from sheetdrop_contract.table import Manifest, Segment, SegmentRef, TableFile, TableTooLarge


@dataclass(frozen=True)
class Layout:
    #: A segment's capacity. It is copied whole, less one workbook, when that workbook changes: the bytes bound
    #: what one overwrite or deletion copies; the files bound a segment description's size (~150 bytes a file).
    segment_files: int = 1000
    segment_bytes: int = 256 * 2**20
    #: Segments under half full a version may list before they are packed into fuller ones.
    loose_segments: int = 50
    #: Segments (so patterns) one registration lists at most.
    max_segments: int = 1000

    def small(self, ref: SegmentRef) -> bool:
        return ref.files * 2 < self.segment_files and ref.bytes * 2 < self.segment_bytes

    def full(self, ref: SegmentRef) -> bool:
        """No file of its average size fits in it any more: packing it would not save a segment."""
        return ref.files >= self.segment_files or \
            (ref.files > 0 and ref.bytes + ref.bytes // ref.files > self.segment_bytes)


@dataclass(frozen=True)
class Move:
    """A file of a new segment (``target``, as its segment lists it) and where its bytes come from: a local file
    this run wrote (``local``), an earlier segment's file on the datastore, or None for the one file of an empty
    table (no rows, the previous version's columns: a registration must list a file that exists)."""

    target: TableFile
    origin: str | None
    local: bool = False


@dataclass(frozen=True)
class Plan:
    manifest: Manifest
    #: The new segments, to be written (their files, then their descriptions) before the manifest.
    segments: tuple[Segment, ...]
    moves: tuple[Move, ...]


def new_segment_id(version: int) -> str:
    """Unique across runs that commit at once (the loser of a commit race plans again with new ids); the version
    that made it first, for whoever lists the folder."""
    return f"v{version}-{uuid.uuid4().hex[:12]}"


def plan(previous: Manifest | None, described: Mapping[str, Segment], *, dataset: str, datastore: str,
         added: Sequence[TableFile], replaced: Iterable[str], gone: Iterable[str], run_id: str,
         layout: Layout = Layout(), new_id: Callable[[int], str] = new_segment_id) -> Plan | None:
    """The next version, or None when nothing changes. ``described``: the previous version's segments by id;
    ``added``: the files this run wrote, by local path (a later file of one blob replaces an earlier one: two
    versions of a blob in one batch)."""
    newest: dict[str, TableFile] = {}
    for item in added:
        for blob in item.blobs():
            newest[blob] = item
    added = [item for item in added if all(newest[blob] is item for blob in item.blobs())]
    dropping = set(replaced) | set(gone) | set(newest)
    kept: list[SegmentRef] = []
    remnants: list[TableFile] = []
    previous_segments = [described[ref.id] for ref in previous.segments] if previous else []
    dropped = False
    for ref in previous.segments if previous else ():
        segment = described[ref.id]
        if not segment.blobs & dropping:
            kept.append(ref)
            continue
        remnants += [f for f in segment.files if not f.blobs() & dropping]
        dropped = True
    if not added and not dropped:
        return None  # nothing of this table was converted again or is gone
    if added or remnants or any(ref.sources for ref in kept):  # an empty table's file of no rows goes once rows come
        kept = [ref for ref in kept if ref.sources]
    version = (previous.version if previous else 0) + 1
    moving = [Move(f, f.path) for f in remnants] + [Move(f, f.path, local=True) for f in added]
    groups = _pack(moving, layout)
    small = [ref for ref in kept if layout.small(ref)]
    if len(small) + sum(_small(group, layout) for group in groups) > layout.loose_segments:
        kept = [ref for ref in kept if not layout.small(ref)]
        moving = [Move(f, f.path) for ref in small for f in described[ref.id].files] + moving
        groups = _pack(moving, layout)
    if not kept and not groups and previous:  # every workbook gone: one file of no rows keeps the columns
        groups = [[Move(TableFile("", (), 0, dict(previous.schema)), None)]]
    if len(kept) + len(groups) > layout.max_segments:
        # Over the limit: pack every segment that is not full, so a table never stays stuck over it (its files
        # would fit in fewer segments); fail only if even that is too many.
        partial = [ref for ref in kept if not layout.full(ref)]
        kept = [ref for ref in kept if layout.full(ref)]
        moving = [Move(f, f.path) for ref in partial for f in described[ref.id].files] + moving
        groups = _pack(moving, layout)
    if len(kept) + len(groups) > layout.max_segments:
        raise TableTooLarge(f"{dataset} would list {len(kept) + len(groups)} segments, more than "
                            f"{layout.max_segments} (a table version's limit here: docs/azureml.md, 'A folder as one "
                            "table')")
    segments, moves = _segments(groups, dataset, version, new_id)
    refs = (*kept, *(s.ref() for s in segments))
    converted = set(newest)
    held = {blob for blob in converted | set(replaced) | set(gone)
             if any(blob in segment.blobs for segment in previous_segments)}
    # removed: converted again without this sheet (its rows leave this table, not the folder's others).
    change = {"added": sorted(converted - held), "replaced": sorted(converted & held),
              "removed": sorted((set(replaced) - converted - set(gone)) & held), "deleted": sorted(set(gone) & held)}
    manifest = Manifest(dataset, version, datastore, refs, table.union_schema(r.schema for r in refs), run_id,
                        {k: v for k, v in change.items() if v})
    return Plan(manifest, tuple(segments), tuple(moves))


def _small(group: list[Move], layout: Layout) -> bool:
    return len(group) * 2 < layout.segment_files and sum(m.target.bytes for m in group) * 2 < layout.segment_bytes


def _pack(moving: list[Move], layout: Layout) -> list[list[Move]]:
    """Fill segments one after the other, in order (a file larger than a segment gets one of its own)."""
    groups: list[list[Move]] = []
    size = 0
    for move in moving:
        if not groups or len(groups[-1]) >= layout.segment_files or \
                (groups[-1] and size + move.target.bytes > layout.segment_bytes):
            groups.append([])
            size = 0
        groups[-1].append(move)
        size += move.target.bytes
    return groups


def _segments(groups: list[list[Move]], dataset: str, version: int,
              new_id: Callable[[int], str]) -> tuple[list[Segment], list[Move]]:
    segments, moves = [], []
    for group in groups:
        segment = new_id(version)
        placed = [Move(TableFile(f"{table.segment_folder(dataset, segment)}/part-{index:05d}.parquet", m.target.sources,
                                 m.target.rows, m.target.schema, m.target.bytes), m.origin, m.local)
                  for index, m in enumerate(group)]
        segments.append(Segment(dataset, segment, tuple(m.target for m in placed)))
        moves += placed
    return segments, moves
