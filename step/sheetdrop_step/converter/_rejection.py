"""The one way a workbook is refused: a code from a closed set and a reason a person can act on.

Raised by the guard, the scan and the reader, carried across the reader process's boundary as
``{"rejected": code, "reason": ...}``, printed by the step as ``error: <code>: <reason>``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

#: encrypted: password-protected (OOXML encryption or an .xls FILEPASS); not-a-workbook: CSV, PDF,
#: Word file... whatever the extension says; corrupt: bad zip, CRC mismatch, truncated, unparsable
#: parts, reader crash; too-large: over the file size, cell count, memory or time limits;
#: unsafe: zip bomb, XML entity expansion, DTDs; empty: no visible worksheet with data.
RejectionCode = Literal["encrypted", "not-a-workbook", "corrupt", "too-large", "unsafe", "empty"]
CODES: tuple[RejectionCode, ...] = get_args(RejectionCode)

OUT_OF_MEMORY = "reading the workbook needs more memory than the limit allows"


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
