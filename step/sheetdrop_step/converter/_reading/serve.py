"""A reader process that reads workbook after workbook (``convert_many``): the interpreter, fastexcel and
pyarrow are started once, not once per workbook, under the same address-space limit as a reader of one.

Jobs come one JSON line at a time on stdin; each is read exactly as ``reader.main`` reads its one job (its
``Reader``, its outcome file in its own staging folder, its output and errors in that folder's
``reader.out``/``reader.err``), and ``done`` on the control pipe (the file descriptor in argv) says the outcome
is written. The parent (``_reading.pool``) keeps the per-workbook time limit and tells each verdict from the
outcome file as it does for a reader of one.

A process is kept only while nothing of an earlier workbook can reach the next one: after a rejection (a
``MemoryError`` or a reader's panic may leave it in a bad state), or with a thread of the job still alive (the
scan's rejection ends the process from its own thread), it says ``last`` and exits, and the parent starts
another.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sheetdrop_step.converter._job import Job, Outcome, job_from_json
from sheetdrop_step.converter._reading import reader
from sheetdrop_step.converter._reading.listing import classify
from sheetdrop_step.converter._reading.reader import Reader, write_outcome

SERVE = ("-P", "-c", "import sys; from sheetdrop_step.converter._reading.serve import main; main(int(sys.argv[1]))")


@contextmanager
def _output_to(staging: Path) -> Iterator[None]:
    """This job's output and errors into its own staging folder, as a reader of one has them."""
    sys.stdout.flush()
    sys.stderr.flush()
    kept = os.dup(1), os.dup(2)
    with (staging / "reader.out").open("wb") as out, (staging / "reader.err").open("wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(kept[0], 1)
            os.dup2(kept[1], 2)
            os.close(kept[0])
            os.close(kept[1])


class _Control:
    """The control pipe where ``reader.finish`` (the scan's rejection, from the scan's thread) says ``done``: the
    parent then reads the rejection and ends this process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def sendall(self, data: bytes) -> None:
        os.write(self.fd, data)


def main(control: int) -> None:
    sys.modules.update({"numpy": None, "pandas": None})  # as reader.main: nothing this process needs
    reader._CHANNEL[:] = [_Control(control)]  # type: ignore[list-item]
    for line in sys.stdin:
        job: Job = job_from_json(line)
        with _output_to(Path(job.staging)):
            try:
                outcome = Reader(job).run()
            except BaseException as exc:  # as reader.main: a failure outside any one sheet is a verdict too
                outcome = Outcome(rejected=classify(exc, job.limits.max_memory_bytes).to_wire())
            write_outcome(job, outcome)
        clean = outcome.rejected is None and threading.active_count() == 1
        os.write(control, b"done\n" if clean else b"last\n")
        if not clean:
            os._exit(0)
