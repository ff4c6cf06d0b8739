"""The reader process, from the parent's side: started under an address-space limit, handed its
:class:`_job.Job`, watched until its time bound, and its end turned into a verdict.

The two are joined by a socket pair besides stdin: the reader says its time bound on it once it knows
the workbook's size (``Limits.time_bound``; until then, the cap), and that it is done (its outcome
written); and learns from its end of file that this process no longer needs it: it has taken the
outcome and closed its end, or it has died, whatever killed it. Either way the reader removes what is
left of the staging folder and exits: the one of the two that outlives the other cleans up.

A reader that aborts (SIGABRT on a failed allocation: the Rust readers abort the whole process),
crashes or runs out of time ends as a rejection naming the limit it hit; one ended by a signal
nothing here sent (an OOM killer, an operator) is :class:`ReaderKilled`, not a verdict.
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

from sheetdrop_step.converter._job import CHANNEL, DONE, Job, Limits, Outcome, outcome_from_json, to_json
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


def limit_memory(max_memory: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort should not dump gigabytes of core


@contextlib.contextmanager
def reader_outcome(job: Job) -> Iterator[Outcome]:
    """The reader process, from start to verdict: its outcome, while the reader waits (it is done) for
    this process to have taken what it wrote; leaving the block lets it go (it removes what is left of
    the staging folder, as it does when this process dies first)."""
    staging, limits = Path(job.staging), job.limits
    ours, theirs = socket.socketpair()
    env = {**reader_env(), CHANNEL: f"{theirs.fileno()}:{staging}"}
    started = time.monotonic()
    try:
        # Files, not pipes, for its output: nothing it prints can fill a pipe and block it.
        with (staging / "reader.out").open("wb") as out, (staging / "reader.err").open("wb") as err:
            proc = subprocess.Popen([sys.executable, *READER], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    env=env, pass_fds=(theirs.fileno(),),
                                    preexec_fn=lambda: limit_memory(limits.max_memory_bytes))
    finally:
        theirs.close()  # the reader's copy is the only one left: its end of file is the reader's end
    try:
        try:
            proc.stdin.write(to_json(job).encode())  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass  # it ended before reading: its end says why
        stopped = _watch(proc, ours, started, limits)
        if stopped is not None:
            raise too_slow(stopped)
        yield verdict(proc, staging, limits)
    finally:
        ours.close()  # the reader's signal to go
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(GOING_S)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def reader_env() -> dict[str, str]:
    """The environment a reader process starts with."""
    # MALLOC_ARENA_MAX: glibc reserves an arena per thread (64 MiB of address space each), which
    # counts against RLIMIT_AS without holding any data. Arrow allocating from glibc too reuses what
    # the parses freed (its own jemalloc pool kept both: 3 sheets of 50k rows peaked 286 MiB, not 199).
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system", "PYTHONPATH": path}


def too_slow(bound: str) -> WorkbookRejected:
    return WorkbookRejected("too-large", f"reading the workbook took longer than {bound}; split it into smaller "
                                         "workbooks")


def _watch(proc: subprocess.Popen[bytes], channel: socket.socket, started: float, limits: Limits) -> str | None:
    """Wait for the reader to be done (or to end), within its time bound (the cap until it says its
    own); None when it is, else the bound it overran (it is killed)."""
    deadline, stopped = started + limits.timeout_seconds, limits.describe_bound(None)
    received = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            return stopped
        if not select.select([channel], [], [], left)[0]:
            continue
        data = channel.recv(4096)
        if not data:  # the reader's end is closed: it has ended (or is ending)
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                return stopped
            return None
        received += data
        while b"\n" in received:
            line, received = received.split(b"\n", 1)
            if line == DONE:
                return None
            size = _content_bytes(line)
            if size is not None:
                deadline = started + limits.time_bound(size)
                stopped = limits.describe_bound(size)


def _content_bytes(line: bytes) -> int | None:
    """The workbook's content size from the reader's ``content <bytes>`` line (anything else: None)."""
    word, _, value = line.decode("ascii", errors="replace").partition(" ")
    return int(value) if word == "content" and value.isdigit() else None


def verdict(proc: subprocess.Popen[bytes], staging: Path, limits: Limits) -> Outcome:
    try:
        outcome = outcome_from_json((staging / "outcome.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        outcome = None
    if outcome is not None:
        if outcome.rejected is not None:
            raise WorkbookRejected.from_wire(outcome.rejected)
        return outcome
    returncode = proc.wait()  # (it wrote no outcome: it has ended)
    err = (staging / "reader.err").read_bytes().decode(errors="replace")
    if any(sign in err for sign in _NO_MEMORY):
        raise WorkbookRejected("too-large", out_of_memory(limits.max_memory_bytes))
    if returncode < 0:
        if -returncode not in FAULTS:
            raise ReaderKilled(-returncode)
        raise WorkbookRejected("corrupt", f"the reader crashed ({signal.Signals(-returncode).name}) on this "
                                          "workbook; open it in Excel or LibreOffice, save it again and re-upload")
    tail = err.strip().splitlines()[-1:] or ["no output"]
    raise WorkbookRejected("corrupt", f"the reader failed on this workbook ({tail[0][:300]})")
