"""The one way a workbook is refused: a code from a closed set and a reason a person can act on; and
the one way a conversion ends that is not the workbook's doing (:class:`ReaderKilled`).

Raised by the guard, the scan and the reader, carried across the reader process's boundary as
``{"rejected": code, "reason": ...}``, printed by the step as ``error: <code>: <reason>``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Literal, get_args

#: encrypted: password-protected (OOXML encryption or an .xls FILEPASS); not-a-workbook: CSV, PDF,
#: Word file... whatever the extension says; corrupt: bad zip, CRC mismatch, truncated, unparsable
#: parts, reader crash; too-large: over the file size, cell count, memory or time limits;
#: unsafe: zip bomb, XML entity expansion, DTDs; empty: no visible worksheet with data.
RejectionCode = Literal["encrypted", "not-a-workbook", "corrupt", "too-large", "unsafe", "empty"]
CODES: tuple[RejectionCode, ...] = get_args(RejectionCode)



def out_of_memory(limit_bytes: int) -> str:
    """The reason of a rejection for memory, naming the limit that was hit."""
    return (f"reading the workbook needs more memory than the reader's {limit_bytes / 1024**2:.0f} MiB limit "
            "(SHEETDROP_READER_MEMORY_MB) allows; it most likely declares a far larger area than its data — "
            "delete stray cells far from the data, save again and re-upload, or raise the limit")


class WorkbookRejected(Exception):
    def __init__(self, code: RejectionCode, reason: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        super().__init__(f"{code}: {reason}")
        self.code: RejectionCode = code
        self.reason = reason

    def to_wire(self) -> dict[str, Any]:
        return {"rejected": self.code, "reason": self.reason}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WorkbookRejected:
        return cls(data["rejected"], data["reason"])


class ReaderKilled(Exception):
    """The reader process was ended by a signal that nothing attributed to the workbook's limits (an
    OOM killer, an operator, a node going away): not a verdict on the workbook, so not a rejection.
    Whoever runs the converter ends the same way (:meth:`end_like_the_reader`), so that its own caller
    sees what it sees when the step itself is killed, and runs it again."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__(f"the reader process was killed by {name} from outside the converter (not for this "
                         "workbook's memory or time limits); converting it again is expected to work")

    def end_like_the_reader(self) -> None:
        """End this process by the reader's signal (its default action), after flushing what it printed."""
        sys.stdout.flush()
        sys.stderr.flush()
        if self.signum not in (signal.SIGKILL, signal.SIGSTOP):  # (whose disposition cannot be changed)
            signal.signal(self.signum, signal.SIG_DFL)
        os.kill(os.getpid(), self.signum)
        os._exit(128 + self.signum)  # a signal whose default action does not end the process
