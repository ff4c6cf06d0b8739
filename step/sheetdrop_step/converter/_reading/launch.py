"""The reader process, from the parent's side: started under an address-space limit, handed its
:class:`_job.Job`, watched until its time bound, and its end turned into a verdict.

The two are joined by a socket pair besides stdin: the reader says its time bound on it once it knows
the workbook's size (``Limits.time_bound``; until then, the cap), and that it is done (its outcome
written); and learns from its end of file that this process no longer needs it: it has taken the
outcome and closed its end, or it has died, whatever killed it. Either way the reader removes what is
left of its folder and exits: the one of the two that outlives the other cleans up.

A reader that aborts (SIGABRT on a failed allocation: the Rust readers abort the whole process),
crashes or runs out of time ends as a rejection naming the limit it hit; one ended by a signal
nothing here sent (an OOM killer, an operator) is :class:`ReaderKilled`, not a verdict.

:func:`reader_outcome` is a reader of one workbook; ``_reading.pool`` keeps long-lived readers for
``convert_many`` with the same pieces: :func:`start`, :func:`send`, :func:`watch`, :func:`verdict` and
:func:`let_go`, so that a workbook meets the same bound, verdicts and end either way.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sheetdrop_step.converter._job import (
    CHANNEL,
    DONE,
    LAST,
    Job,
    Limits,
    Outcome,
    content_bytes,
    outcome_from_json,
    to_json,
)
from sheetdrop_step.converter._rejection import ReaderKilled, WorkbookRejected, out_of_memory

#: The reader runs from the same files as this process, under the same import names: ``-P`` keeps the
#: working directory off its path and PYTHONPATH names the folder this package was imported from (the
#: step's snapshot in AzureML and under the local runner, the checkout's step/ in development).
READER = ("-P", "-c", "from sheetdrop_step.converter._reading.reader import main; main()")
#: The folder holding ``sheetdrop_step`` (this file is sheetdrop_step/converter/_reading/launch.py).
PACKAGE_ROOT = Path(__file__).resolve().parents[3]
#: Seconds a reader that is done may take to go once let go.
GOING_S = 5.0
#: Signals a process raises on itself when it fails (a fault, an abort): a crash on the workbook. Any
#: other signal came from outside.
FAULTS = {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGSYS, signal.SIGTRAP}
#: What a reader's error output says when an allocation failed (Rust's abort, C++'s, Python's).
_NO_MEMORY = ("memory allocation of", "MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")

Reader = subprocess.Popen[bytes]


def _limit(max_memory: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort should not dump gigabytes of core


@contextlib.contextmanager
def reader_outcome(job: Job) -> Iterator[Outcome]:
    """A reader process for one workbook, from start to verdict: its outcome, while the reader waits (it
    is done) for this process to have taken what it wrote; leaving the block lets it go (it removes
    what is left of the staging folder, as it does when this process dies first)."""
    staging, started = Path(job.staging), time.monotonic()
    proc, channel = start(READER, staging, job.limits, staging)
    try:
        send(proc, job, more=False)
        watch(proc, channel, started, job.limits)
        yield verdict(proc, staging, job.limits)
    finally:
        let_go(proc, channel)


def start(command: tuple[str, ...], folder: Path, limits: Limits, output: Path) -> tuple[Reader, socket.socket]:
    """A reader process (``command``: Python's arguments) under ``limits``'s address-space limit, its
    output and errors in ``output``'s ``reader.out`` and ``reader.err``; and this process's end of its
    channel. ``folder`` is what the reader removes when that end closes (``reader.connect``)."""
    ours, theirs = socket.socketpair()
    # MALLOC_ARENA_MAX: glibc reserves an arena per thread (64 MiB of address space each), which
    # counts against RLIMIT_AS without holding any data. Arrow allocating from glibc too reuses what
    # the parses freed (its own jemalloc pool kept both: 3 sheets of 50k rows peaked 286 MiB, not 199).
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system", "PYTHONPATH": path,
           CHANNEL: f"{theirs.fileno()}:{folder}"}
    try:
        # Files, not pipes, for its output: nothing it prints can fill a pipe and block it.
        with (output / "reader.out").open("wb") as out, (output / "reader.err").open("wb") as err:
            proc = subprocess.Popen([sys.executable, *command], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    env=env, pass_fds=(theirs.fileno(),),
                                    preexec_fn=lambda: _limit(limits.max_memory_bytes))
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()  # the reader's copy is the only one left: its end of file is the reader's end
    return proc, ours


def send(proc: Reader, job: Job, *, more: bool) -> None:
    """Hand the reader its job: one line of JSON on stdin (JSON escapes every newline in it), then
    stdin closed, unless ``more`` jobs will follow (a long-lived reader)."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(to_json(job).encode() + b"\n")
        if more:
            proc.stdin.flush()
        else:
            proc.stdin.close()
    except BrokenPipeError:
        pass  # it ended before reading: its end says why


def watch(proc: Reader, channel: socket.socket, started: float, limits: Limits) -> bytes:
    """Wait for the reader to be done with its job (or to end), within the job's time bound counted from
    ``started`` (the cap until the reader says the workbook's size): the line it ended with (``done``
    or ``last``), or ``b""`` when it has ended. Past the bound the reader is killed and the workbook
    rejected, naming the bound. (A reader says nothing after ``done`` until its next job: nothing read
    here belongs to another job.)"""
    deadline, size = started + limits.timeout_seconds, None
    received = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            raise too_slow(limits, size)
        if not select.select([channel], [], [], left)[0]:
            continue
        data = channel.recv(4096)
        if not data:  # the reader's end is closed: it has ended (or is ending)
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                raise too_slow(limits, size) from None
            return b""
        received += data
        while b"\n" in received:
            line, received = received.split(b"\n", 1)
            if line in (DONE, LAST):
                return line
            if (found := content_bytes(line)) is not None:
                size, deadline = found, started + limits.time_bound(found)


def too_slow(limits: Limits, content: int | None) -> WorkbookRejected:
    return WorkbookRejected("too-large", f"reading the workbook took longer than {limits.describe_bound(content)}; "
                                         "split it into smaller workbooks")


def verdict(proc: Reader, staging: Path, limits: Limits, err: Path | None = None) -> Outcome:
    """The job's outcome (``staging``'s ``outcome.json``), or the rejection it says; a reader that ended
    without one is judged by how it ended and its error output (``err``: the job's ``reader.err``)."""
    try:
        outcome = outcome_from_json((staging / "outcome.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        outcome = None
    if outcome is not None:
        if outcome.rejected is not None:
            raise WorkbookRejected.from_wire(outcome.rejected)
        return outcome
    returncode = proc.wait()  # (it wrote no outcome: it has ended)
    text = (err or staging / "reader.err").read_bytes().decode(errors="replace")
    if any(sign in text for sign in _NO_MEMORY):
        raise WorkbookRejected("too-large", out_of_memory(limits.max_memory_bytes))
    if returncode < 0:
        if -returncode not in FAULTS:
            raise ReaderKilled(-returncode)
        raise WorkbookRejected("corrupt", f"the reader crashed ({signal.Signals(-returncode).name}) on this "
                                          "workbook; open it in Excel or LibreOffice, save it again and re-upload")
    tail = text.strip().splitlines()[-1:] or ["no output"]
    raise WorkbookRejected("corrupt", f"the reader failed on this workbook ({tail[0][:300]})")


def let_go(proc: Reader, channel: socket.socket) -> None:
    """Close this end of the channel (the reader's signal to go: it removes what is left of its folder)
    and wait for the reader to be gone; killed when it takes longer than ``GOING_S``."""
    channel.close()
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(GOING_S)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
