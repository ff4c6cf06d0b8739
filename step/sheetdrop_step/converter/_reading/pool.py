"""Long-lived reader processes, from the parent's side (``convert_many``): a workbook gets exactly what a
reader of one gives it (``_reading.launch``: the same limits, time bound, verdicts and end), without a
process start per workbook.

Each :class:`ReaderProcess` runs one workbook at a time under the address-space limit it was started with.
Its process has a folder of its own (locked by this process, as a staging folder is: ``_staging``), which
holds the staging folder of each job, and which the reader removes when the channel closes, so nothing of
it outlives this process whatever kills it. Each job's time bound is counted from the job (from the
process's start for its first): the workbook's size on the ``content`` line moves it, as for a reader of
one. A process is kept for the next workbook only when it said ``done`` and the workbook was not rejected;
one that ran out of time, died (a crash, or killed from outside: :class:`ReaderKilled`), rejected its
workbook or said ``last`` (``_reading.serve``) is let go, and a new one reads the next workbook. So one
hostile workbook costs its own result and a process start, nothing of the others.

The channel, not ``PR_SET_PDEATHSIG`` (which ``python -m sheetdrop_step`` asks for itself), ends a reader whose
parent died: the kernel's SIGKILL would leave its folder behind, and it fires when the *thread* that started the
reader ends, and ``convert_many`` starts its readers from threads of its own.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sheetdrop_step.converter._job import DONE, Job, Limits, Outcome
from sheetdrop_step.converter._reading.launch import Reader, let_go, send, start, verdict, watch
from sheetdrop_step.converter._staging import staging_folder

SERVE = ("-P", "-c", "from sheetdrop_step.converter._reading.serve import main; main()")


@dataclass
class ReaderProcess:
    #: Workbooks a process reads before it is replaced (memory a long run leaves fragmented).
    max_jobs: int = 200
    #: Processes started (a test can see a dead reader replaced).
    started: int = 0
    _proc: Reader | None = field(default=None, repr=False)
    _channel: socket.socket | None = field(default=None, repr=False)
    _folder: Path | None = None
    _owned: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    _memory: int | None = None
    _jobs: int = 0
    _since: float = 0.0

    @contextlib.contextmanager
    def staging(self, limits: Limits) -> Iterator[Path]:
        """A job's staging folder, inside the folder of the process that will read it: this one's, or a new
        one's when this one has ended, read its share of jobs or runs under another memory limit (the one
        limit that is the process's: the others are each job's)."""
        proc = self._proc
        if proc is None or proc.poll() is not None or self._memory != limits.max_memory_bytes \
                or self._jobs >= self.max_jobs:
            self.close()
            self._start(limits)
        assert self._folder is not None
        folder = self._folder / f"job-{self._jobs}"
        folder.mkdir()
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def outcome(self, job: Job) -> Iterator[Outcome]:
        """Its outcome (in a staging folder of :meth:`staging`), or the WorkbookRejected or ReaderKilled a reader
        of one would end with; the process kept for the next job, or let go."""
        proc, channel = self._proc, self._channel
        assert proc is not None and channel is not None and Path(job.staging).parent == self._folder
        started = self._since if self._jobs == 0 else time.monotonic()
        self._jobs += 1
        kept = False
        try:
            send(proc, job, more=True)
            line = watch(proc, channel, started, job.limits)
            staging = Path(job.staging)
            # Errors before the process took the job (its start) went to its own folder's file.
            err = staging / "reader.err" if (staging / "reader.err").exists() else self._folder / "reader.err"
            outcome = verdict(proc, staging, job.limits, err)
            kept = line == DONE
            yield outcome
        finally:
            if not kept:
                self.close()

    def _start(self, limits: Limits) -> None:
        self._owned = contextlib.ExitStack()
        self._folder = self._owned.enter_context(staging_folder())
        self._since = time.monotonic()
        try:
            self._proc, self._channel = start(SERVE, self._folder, limits, self._folder)
        except BaseException:
            self._owned.close()
            raise
        self._memory, self._jobs = limits.max_memory_bytes, 0
        self.started += 1

    def kill(self) -> None:
        """Stop what it is doing, from another thread (the thread that runs it then sees it ended)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def close(self) -> None:
        """Let the process go (killed if it does not go: whatever it was doing is abandoned) and remove its
        folder."""
        if self._proc is not None and self._channel is not None:
            let_go(self._proc, self._channel)
        self._owned.close()
        self._proc, self._channel, self._folder, self._memory = None, None, None, None
