"""A reader process that reads workbook after workbook (``convert_many``): the interpreter, fastexcel and
pyarrow are started once, not once per workbook, under the same address-space limit as a reader of one.

It speaks the reader of one's protocol (``_reading.launch``), once per job: jobs come one JSON line at a
time on stdin; each is read by ``reader.read`` (its outcome file in its own staging folder, its output and
errors in that folder's ``reader.out``/``reader.err``), ``content <bytes>`` on the channel starts its time
bound, and ``done`` says its outcome is written. The parent's end of the channel closing (it has let this
process go, or died, whatever killed it) ends the process from any state, after its folder (which holds
the jobs' staging folders) is removed (``channel``).

A process is kept only while nothing of an earlier workbook can reach the next one: after a rejection (a
``MemoryError`` or a reader's panic may leave it in a bad state), or with a thread of the job still alive,
it says ``last`` instead of ``done`` and waits to be let go, and the parent starts another. The scan's
rejection ends a job from the scan's thread (``channel.finish``): that process is never given another.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sheetdrop_step.converter._job import LAST, job_from_json
from sheetdrop_step.converter._reading.channel import WATCH, connect, done, finish, watched
from sheetdrop_step.converter._reading.reader import read

#: How long a thread of a job may take to end once the job has its outcome (a pool's workers are joined;
#: the scan's thread sets its event just before it ends).
ENDING_S = 1.0


def main() -> None:
    channel = connect()
    with watched():
        for line in sys.stdin.buffer:
            job = job_from_json(line.decode("utf-8"))
            with _output_to(Path(job.staging)):
                outcome = read(job, channel)
            if outcome.rejected is not None or _threads_left():
                finish(job, outcome, LAST)
            done(job, outcome)
        threading.Event().wait()  # stdin closed: the parent is letting this process go, or gone (the watch ends it)


def _threads_left() -> bool:
    """Whether a thread of the last job is still alive (given ``ENDING_S`` to end)."""
    deadline = time.monotonic() + ENDING_S
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.name != WATCH]
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    return any(thread.is_alive() for thread in others)


@contextmanager
def _output_to(staging: Path) -> Iterator[None]:
    """This job's output and errors into its own staging folder, as a reader of one has them (a Rust
    reader's abort message among them: the verdict reads it there)."""
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
