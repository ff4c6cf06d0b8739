"""What ``sheetdrop host --drop FILE…`` (``make run``) does once the host is up, and the summary it
prints: each file is dropped only into a state that has none of it, so a second ``make run`` never
makes the sample a new version of its datasets again; the summary says what this start did, one
run per line pair, in the terminal's width (``textfit``), and where the rest is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sheetdrop_local import db, registry, runstore, textfit
from sheetdrop_local.readmodel import locations, runs
from sheetdrop_local.readmodel.labels import ref, short
from sheetdrop_local.settings import LocalSettings


def say(text: str = "") -> None:
    """Print, each line in the terminal's width."""
    print(textfit.lines(text, textfit.terminal_width()), flush=True)


def already_here(settings: LocalSettings, blob: str) -> bool:
    """Whether this state has the blob already: in the input container (any version), or in a run
    (the blob may have been deleted since; its datasets are still here)."""
    conn = db.connect(settings.state_dir)
    if runstore.blob_has_runs(conn, settings.input_container, blob):
        return True
    return locations.quick_service(settings).get_blob_client(settings.input_container, blob).exists()


@dataclass(frozen=True)
class Dropped:
    file: Path
    blob: str
    #: None when the file was not dropped (this state has it already).
    etag: str | None


def drop_new(settings: LocalSettings, files: list[tuple[Path, str]],
             drop: Callable[[Path, str], tuple[str, str]]) -> list[Dropped]:
    """Drop each (file, blob name) that this state does not have yet; the others are said and left."""
    done = []
    for path, blob in files:
        if already_here(settings, blob):
            say(f"not dropped: {settings.input_container}/{blob} is already in this state")
            done.append(Dropped(path, blob, None))
        else:
            name, etag = drop(path, blob)
            done.append(Dropped(path, name, etag))
    return done


def wait_for_runs(settings: LocalSettings, versions: list[tuple[str, str]], timeout: float = 300.0) -> list[str]:
    """Wait until each dropped blob version's run has ended, or the trigger decided there will be none
    (skipped, options invalid): matched by etag, so an earlier run of the same name does not count;
    return the blobs still without either."""
    conn = db.connect(settings.state_dir)
    claims = locations.claims_reader(settings, locations.quick_service(settings))
    pending = set(versions)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for blob, etag in list(pending):
            found = [runstore.get(conn, run_id) for run_id in runstore.find_by_source(
                conn, settings.input_container, blob, etag)]
            if any(r is not None and r.status in runstore.ENDED for r in found) or (
                    not found and runs.no_run_reason(claims, settings.input_container, blob, etag)):
                pending.discard((blob, etag))
        time.sleep(0.25)
    if pending:
        print(f"warning: no finished run after {timeout:.0f} s for: {', '.join(b for b, _ in sorted(pending))} "
              "(see `sheetdrop runs`)", file=sys.stderr)
    return sorted(b for b, _ in pending)


def outcome_lines(settings: LocalSettings, dropped: Dropped) -> list[str]:
    """What became of one drop: its run and what it made (or why it made nothing)."""
    assert dropped.etag is not None
    conn = db.connect(settings.state_dir)
    where = (settings.input_container, dropped.blob, dropped.etag)
    found = runstore.find_by_source(conn, *where)
    run = runstore.get(conn, found[-1]) if found else None
    name = f"{settings.input_container}/{dropped.blob}"
    if run is None:
        claims = locations.claims_reader(settings, locations.quick_service(settings))
        return [f"{name}: no run", f"  {runs.no_run_reason(claims, *where) or 'not submitted yet'}"]
    took = f" in {run.seconds:.1f} s" if run.seconds is not None else ""
    made = ", ".join(ref(v) for v in registry.for_run(conn, run.run_id))
    detail = run.error if run.status == runstore.RunStatus.FAILED else made or "no dataset versions"
    return [f"{name}: run {short(run.run_id)} {run.status}{took}", f"  {detail}"]


def summary(settings: LocalSettings, dropped: list[Dropped]) -> list[str]:
    """What this start did, and how much the state holds (the lists themselves are a command away)."""
    lines = []
    for item in dropped:
        if item.etag is not None:
            lines += outcome_lines(settings, item)
    conn = db.connect(settings.state_dir)
    count_runs, count_versions = runstore.count(conn), registry.count(conn)
    lines.append(f"this state: {count_runs} run{'s' * (count_runs != 1)}, {count_versions} dataset "
                 f"version{'s' * (count_versions != 1)} (`sheetdrop runs`, `sheetdrop datasets`)")
    return lines
