"""The reader process's end of its channel with the parent (``_reading.launch`` says the protocol): the
watch that removes the reader's folder and ends the process once the parent's end closes, and the lines
that say a job's outcome is written. Shared by a reader of one workbook (``reader.main``) and a
long-lived one (``_reading.serve``), so both end alike whatever ends their parent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from sheetdrop_step.converter._job import CHANNEL, DONE, Job, Outcome, to_json

#: The exit status of a reader whose parent died mid-job (nobody reads it).
ORPHANED = 3
#: The thread that watches the parent's end (``_reading.serve`` tells it from threads a job left behind).
WATCH = "sheetdrop-parent"
_FINISHING = threading.Lock()
_IDLE = threading.Event()  # no job in progress: the last one's outcome written
_LEFT = threading.Event()  # the parent's end has closed: the watch is removing the folder
_CHANNEL: list[socket.socket] = []  # (set by connect)


def connect() -> socket.socket:
    """This process made a reader: the parent's channel (``CHANNEL``: its file descriptor and the folder
    that goes when it closes), watched from a thread of its own before anything else is done."""
    # pyarrow imports numpy when installed (0.15 s, 16 MiB) and pandas the first time it converts a
    # Python value (0.4 s): nothing this process needs. Hidden (an import of a module that sys.modules
    # holds as None fails), the process is also the same whether or not the environment has them.
    sys.modules.update({"numpy": None, "pandas": None})
    fd, _, folder = os.environ.pop(CHANNEL).partition(":")
    channel = socket.socket(fileno=int(fd))
    _CHANNEL[:] = [channel]
    threading.Thread(target=_outlive_no_parent, args=(channel, Path(folder)), name=WATCH, daemon=True).start()
    return channel


@contextlib.contextmanager
def watched() -> Iterator[None]:
    """Around the main thread's work: a failure after the parent's end closed is no failure (the watch renamed the
    folder under the job's feet). The thread then waits for the watch to end the process: leaving would end the
    interpreter, and with it the watch half-way through removing the folder. Before that, a failure ends the
    process as it would anyway, and the parent judges it (``launch.verdict``)."""
    try:
        yield
    except BaseException:
        if _LEFT.is_set():
            threading.Event().wait()
        raise


def started() -> None:
    """A job is in progress (a parent that goes now leaves it unfinished: ``ORPHANED``)."""
    _IDLE.clear()


def _outlive_no_parent(channel: socket.socket, folder: Path) -> None:
    """Wait for the end of the parent's side of the channel (it never writes): the parent has taken the
    outcome, or it has died, whatever killed it. Either way nobody is to read what this process writes:
    what is left of its folder (a reader of one, its staging folder; a long-lived reader, its own folder
    with its jobs' staging folders in it) goes, and this process ends (watched from a thread of its own,
    so a parse running in Rust does not hold it up)."""
    with contextlib.suppress(OSError):
        while channel.recv(64):
            pass
    _LEFT.set()  # (before the rename: whatever fails because of it fails after this)
    # Renamed first: the threads still reading can create nothing more in it (they name files by its
    # path), and what they write to files they opened goes with it.
    gone = folder.with_name(folder.name + "-orphaned")
    with contextlib.suppress(OSError):
        folder.rename(gone)
    for _ in range(3):
        shutil.rmtree(gone, ignore_errors=True)
        if not gone.exists():
            break
    os._exit(0 if _IDLE.is_set() else ORPHANED)


def finish(job: Job, outcome: Outcome, line: bytes = DONE) -> NoReturn:
    """Write the outcome, say so to the parent (``line``), and wait for it to let this process go (from
    any thread; the first caller wins). Everything is written and closed by then: the process ends
    without the interpreter's teardown (~0.1 s)."""
    _FINISHING.acquire()
    _write_outcome(job, outcome)
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):  # (a parent that has died: the watch ends this process)
        _CHANNEL[0].sendall(line + b"\n")
    threading.Event().wait()  # until the parent has taken the outcome: the watch ends this process then


def done(job: Job, outcome: Outcome) -> None:
    """Write the outcome, say so to the parent, and go on to the next job (a long-lived reader); a
    ``finish`` from another thread of the job cannot write in between."""
    with _FINISHING:
        _write_outcome(job, outcome)
    with contextlib.suppress(OSError):  # (a parent that has died: the watch ends this process)
        _CHANNEL[0].sendall(DONE + b"\n")


def _write_outcome(job: Job, outcome: Outcome) -> None:
    path = Path(job.staging) / "outcome.json"
    path.with_suffix(".tmp").write_text(to_json(outcome), encoding="utf-8")
    os.replace(path.with_suffix(".tmp"), path)
    _IDLE.set()
