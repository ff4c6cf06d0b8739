"""Long-lived reader processes, from the parent's side (``convert_many``): the same limits and verdicts as a
reader of one workbook (``_reading.launch``), without a process start per workbook.

Each :class:`ReaderProcess` runs one workbook at a time under the address-space limit it was started with and
the job's time limit, counted by the parent. A reader that runs out of time is killed; one that died, rejected
its workbook or says it will not take another (``_reading.serve``) is replaced by a new one for the next
workbook. So one hostile workbook costs its own version and a process start, nothing of the others.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sheetdrop_step.converter._job import Job, Limits, Outcome, to_json
from sheetdrop_step.converter._reading.launch import limit_memory, reader_env, too_slow, verdict
from sheetdrop_step.converter._reading.serve import SERVE
from sheetdrop_step.converter._rejection import ReaderKilled, WorkbookRejected


@dataclass
class ReaderProcess:
    #: Workbooks a process reads before it is replaced (memory a long run leaves fragmented).
    max_jobs: int = 200
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _control: int = -1
    _limits: Limits | None = None
    _jobs: int = 0
    #: Processes started (a test can see a dead reader replaced).
    started: int = 0

    def run(self, job: Job) -> Outcome:
        """Read one workbook; its Outcome, or WorkbookRejected as ``launch.run_reader`` raises it."""
        if self._proc is None or self._proc.poll() is not None or self._limits != job.limits \
                or self._jobs >= self.max_jobs:
            self.close()
            self._start(job.limits)
        assert self._proc is not None and self._proc.stdin is not None
        self._jobs += 1
        (Path(job.staging) / "reader.err").touch()  # what the verdict reads if the process dies before the job
        try:
            self._proc.stdin.write(to_json(job).encode() + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died meanwhile: the verdict below says how
        answer = self._answer(job.limits.timeout_seconds)
        if answer is None:
            self.close()
            raise too_slow(job.limits.describe_bound(None))
        proc = self._proc
        if answer != "done":  # "last", or the process ended (killed, crashed, the scan's rejection)
            proc.wait()
            self._forget()
        try:
            return verdict(proc, Path(job.staging), job.limits)
        except (WorkbookRejected, ReaderKilled):
            self.close()
            raise

    @contextlib.contextmanager
    def outcome(self, job: Job) -> Iterator[Outcome]:
        """:meth:`run` as ``convert_workbook`` takes a reader (``launch.reader_outcome``)."""
        yield self.run(job)

    def _answer(self, timeout: float) -> str | None:
        """``done``, ``last`` or ``""`` (the process ended); None when the time limit ran out."""
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._control], [], [], left)[0]:
                return None
            chunk = os.read(self._control, 64)
            if not chunk:
                return ""
            line += chunk
        return line.decode().strip()

    def _start(self, limits: Limits) -> None:
        read, write = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, *SERVE, str(write)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=reader_env(), pass_fds=(write,),
                preexec_fn=lambda: limit_memory(limits.max_memory_bytes))
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._control, self._limits, self._jobs = read, limits, 0
        self.started += 1

    def _forget(self) -> None:
        if self._control >= 0:
            os.close(self._control)
        self._proc, self._control = None, -1

    def kill(self) -> None:
        """Stop what it is doing, from another thread (the thread that runs it then sees it ended)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def close(self) -> None:
        """End the process (killed: whatever it was doing is abandoned)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        self._forget()
