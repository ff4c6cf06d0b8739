"""Many workbooks → parquet, without a process start per workbook: :func:`convert_many`.

Each workbook is converted exactly as :func:`convert_workbook` converts it (same reader, same limits, same
files, same rejections), by one of a few long-lived reader processes (``_reading.pool``) instead of a new one.
The safety model is the single workbook's: each reader runs one workbook at a time under the address-space
limit and the workbook's own time bound; one that dies, runs out of time or rejects its workbook is replaced,
so a hostile workbook costs only its own result; one killed from outside costs its workbook a ``ReaderKilled``;
and the readers end with the process that runs them, whatever ends it, leaving no staging folder.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sheetdrop_contract.read_options import ReadOptions
from sheetdrop_step.converter._entry import Converted, convert_workbook, usable_cores
from sheetdrop_step.converter._job import Limits
from sheetdrop_step.converter._reading.pool import ReaderProcess


@dataclass(frozen=True)
class Workbook:
    """One workbook of a batch: :func:`convert_workbook`'s arguments for it, and ``key``, the caller's own."""

    src: Path
    outdir: Path
    source: str | None = None
    options: ReadOptions | None = None
    previous: dict[str, dict[str, str]] | None = None
    key: Any = field(default=None, compare=False)


def memory_bytes(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory this process may use: a container's limit (cgroup v2 ``memory.max``, v1
    ``memory/memory.limit_in_bytes``) or the machine's (``MemTotal``), whichever is smaller; None if unknown."""
    found = []
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (cgroup / name).read_text().strip()
            if text.isdigit():
                found.append(int(text))
        except OSError:
            continue
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return min(found) if found else None


def reader_count(limits: Limits, cores: int | None = None, memory: int | None = None) -> int:
    """Readers at once: one per usable core, as long as each could take its whole memory limit at the same time
    (a batch never risks more memory than its readers are allowed), and at least one."""
    cores = cores or usable_cores()
    memory = memory if memory is not None else memory_bytes()
    fit = math.floor(memory / limits.max_memory_bytes) if memory else cores
    return max(1, min(cores, fit))


def convert_many(workbooks: Iterable[Workbook], *, include_hidden: bool = False, limits: Limits | None = None,
                 readers: int | None = None) -> Iterator[tuple[Workbook, Converted | Exception]]:
    """Convert each workbook as :func:`convert_workbook` does, ``readers`` at once (default:
    :func:`reader_count`), and yield it with its result as each one ends (not in the given order): its
    ``Converted``, the ``WorkbookRejected`` that refused it, the ``ReaderKilled`` of a reader ended from
    outside, or any other exception its conversion raised (a full disk, say: not the workbook's fault, and not
    the others' either).

    ``workbooks`` is read lazily, one at a time as a reader is free, so a caller may produce them as it
    fetches them. Closing the iterator early stops the readers.
    """
    limits = limits or Limits()
    count = readers or reader_count(limits)
    # The cores are shared by the readers: each parses its sheets on its share (a batch of small workbooks is
    # faster one workbook per core than one workbook on every core).
    cores = max(1, usable_cores() // count)
    source = iter(workbooks)
    taking = threading.Lock()
    results: queue.Queue[tuple[Workbook, Converted | Exception] | None] = queue.Queue()
    stop = threading.Event()
    failed: list[Exception] = []  # the caller's own iterable raised
    processes = [ReaderProcess() for _ in range(count)]

    def next_workbook() -> Workbook | None:
        with taking:
            if stop.is_set():
                return None
            try:
                return next(source)
            except StopIteration:
                return None
            except Exception as exc:
                failed.append(exc)
                stop.set()
                return None

    def work(process: ReaderProcess) -> None:
        try:
            while (book := next_workbook()) is not None:
                try:
                    result: Converted | Exception = convert_workbook(
                        book.src, book.outdir, source=book.source, include_hidden=include_hidden, limits=limits,
                        workers=cores, options=book.options, previous=book.previous, reader=process)
                except Exception as exc:  # WorkbookRejected, ReaderKilled, or another failure: its result either way
                    result = exc
                results.put((book, result))
        finally:
            process.close()
            results.put(None)

    threads = [threading.Thread(target=work, args=(p,), name=f"sheetdrop-reader-{i}", daemon=True)
               for i, p in enumerate(processes)]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = results.get()
            if item is None:
                running -= 1
            else:
                yield item
        if failed:
            raise failed[0]
    finally:
        stop.set()
        for process in processes:
            process.kill()  # a reader still reading ends now; its thread then closes it
        for thread in threads:
            thread.join()
