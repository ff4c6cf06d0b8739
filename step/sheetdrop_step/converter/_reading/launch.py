"""The reader process, from the parent's side: started under an address-space limit and a timeout,
handed its :class:`_job.Job`, and its end turned into a verdict. A reader that aborts (SIGABRT on a
failed allocation: the Rust readers abort the whole process), is killed or runs out of time still
ends as a rejection with a reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sheetdrop_step.converter._job import Job, Limits, Outcome, outcome_from_json, to_json
from sheetdrop_step.converter._rejection import OUT_OF_MEMORY, WorkbookRejected

#: The reader runs from the same files as this process, under the same import names: ``-P`` keeps the
#: working directory off its path and PYTHONPATH names the folder this package was imported from (the
#: step's snapshot in AzureML and under the local runner, the checkout's step/ in development).
READER = ("-P", "-c", "from sheetdrop_step.converter._reading.reader import main; main()")
#: The folder holding ``sheetdrop_step`` (this file is sheetdrop_step/converter/_reading/launch.py).
PACKAGE_ROOT = Path(__file__).resolve().parents[3]


def limit_memory(max_memory: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort should not dump gigabytes of core


def reader_env() -> dict[str, str]:
    """The environment a reader process starts with."""
    # MALLOC_ARENA_MAX: glibc reserves an arena per thread (64 MiB of address space each), which
    # counts against RLIMIT_AS without holding any data. Arrow allocating from glibc too reuses what
    # the parses freed (its own jemalloc pool kept both: 3 sheets of 50k rows peaked 286 MiB, not 199).
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system", "PYTHONPATH": path}


def too_slow(limits: Limits) -> WorkbookRejected:
    return WorkbookRejected("too-large", f"reading the workbook took longer than the {limits.timeout_seconds:.0f} s "
                                         "limit; split it into smaller workbooks")


def run_reader(job: Job) -> Outcome:
    """The reader process, from start to verdict."""
    staging, limits = Path(job.staging), job.limits
    # Files, not pipes, for its output: nothing it prints can fill a pipe and block it.
    with (staging / "reader.out").open("wb") as out, (staging / "reader.err").open("wb") as err:
        proc = subprocess.Popen([sys.executable, *READER], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                env=reader_env(), preexec_fn=lambda: limit_memory(limits.max_memory_bytes))
    try:
        proc.communicate(to_json(job).encode(), timeout=limits.timeout_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise too_slow(limits) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return verdict(proc.returncode, staging, limits)


def verdict(returncode: int, staging: Path, limits: Limits) -> Outcome:
    try:
        outcome = outcome_from_json((staging / "outcome.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        outcome = None
    if outcome is not None:
        if outcome.rejected is not None:
            raise WorkbookRejected.from_wire(outcome.rejected)
        return outcome
    if returncode < 0:
        sig = -returncode
        if sig in (signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS):
            raise WorkbookRejected(
                "too-large", f"the reader ran out of its {limits.max_memory_bytes / 1024**3:.0f} GiB memory budget or "
                f"crashed ({signal.Signals(sig).name}) on this workbook; it most likely declares a far larger area "
                "than its data — delete stray cells far from the data, save again and re-upload")
        raise WorkbookRejected("corrupt", f"the reader stopped with signal {sig} on this workbook")
    err = (staging / "reader.err").read_bytes().decode(errors="replace")
    if "MemoryError" in err:
        raise WorkbookRejected("too-large", OUT_OF_MEMORY)
    tail = err.strip().splitlines()[-1:] or ["no output"]
    raise WorkbookRejected("corrupt", f"the reader failed on this workbook ({tail[0][:300]})")
