"""What crosses the boundary between the parent (``_reading.launch``) and the reader process
(``_reading.reader``): a Job in, an Outcome out, both plain dataclasses carried as JSON (never pickle:
the reader process handles hostile files, so what it sends back is data to check, not code to run).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sheetdrop_contract.read_options import ReadOptions

#: The environment variable naming the reader's end of its socket pair with the parent (a file
#: descriptor) and, after a colon, the staging folder: ``_reading.launch`` says why.
CHANNEL = "SHEETDROP_READER_CHANNEL"
#: The reader's line on the channel once its outcome is written.
DONE = b"done"
#: A long-lived reader's line instead of ``done`` when it will take no other job (``_reading.serve``): the
#: parent takes the outcome and lets it go.
LAST = b"last"


def content_line(content_bytes: int) -> bytes:
    """The reader's line on the channel once it knows the workbook's size (``Limits.time_bound``)."""
    return f"content {content_bytes}\n".encode()


def content_bytes(line: bytes) -> int | None:
    """The size a ``content <bytes>`` line says (anything else: None)."""
    word, _, value = line.decode("ascii", errors="replace").partition(" ")
    return int(value) if word == "content" and value.isdigit() else None


def _default(setting: str, unit: float = 1) -> Any:
    """A step setting's default, from the contract, read when a Limits is made without it (the reader
    process is given every limit: it never loads the contract)."""

    def factory() -> Any:
        from sheetdrop_contract.contract import STEP_DEFAULTS

        return type(unit)(STEP_DEFAULTS[setting] * unit)

    return field(default_factory=factory)


@dataclass(frozen=True)
class Limits:
    """Configurable bounds; the defaults suit a step with a few GiB of memory. Those that are step
    settings take their defaults from the contract."""

    max_file_bytes: int = _default("SHEETDROP_MAX_FILE_MB", 1024**2)
    max_uncompressed_bytes: int = 4 * 1024**3  # all zip entries together, as inflated
    max_entry_ratio: float = 200.0  # uncompressed/compressed, for entries above ratio_floor_bytes
    ratio_floor_bytes: int = 8 * 1024**2
    max_entries: int = 10_000
    #: The area (rows x columns holding values) a reader would allocate, per sheet.
    max_cells: int = _default("SHEETDROP_MAX_CELLS")
    #: Address space of the reader process, shared by the sheets it parses at once.
    max_memory_bytes: int = _default("SHEETDROP_READER_MEMORY_MB", 1024**2)
    #: The most a reader may take on any workbook: the cap of :meth:`time_bound`.
    timeout_seconds: float = _default("SHEETDROP_READER_TIMEOUT_S", 1.0)
    #: The time bound of a workbook (:meth:`time_bound`): a base, and seconds per MiB of its content.
    time_base_seconds: float = 60.0
    time_per_mib_seconds: float = 1.0
    #: A sheet of at least two pieces' XML is parsed in pieces of about this size, at once.
    piece_bytes: int = 8 * 1024**2

    def time_bound(self, content_bytes: int) -> float:
        """The time a reader may take on a workbook of ``content_bytes`` (its parts as its zip directory
        declares them, inflated; an .xls, its file): ``time_base_seconds`` plus ``time_per_mib_seconds``
        per MiB, at most ``timeout_seconds``. Reading is linear in those bytes: about 50 MiB/s of sheet
        XML, 5 MiB/s of .xls through xlrd (the slowest reader) on one core; the bound leaves five times
        that, and a minute for the start and a small workbook on a loaded machine."""
        return min(self.timeout_seconds, self.time_base_seconds + self.time_per_mib_seconds * content_bytes / 1024**2)

    def describe_bound(self, content_bytes: int | None) -> str:
        """The bound as a person reads it, with the formula it comes from (the cap while the size is unknown)."""
        if content_bytes is None or self.time_bound(content_bytes) >= self.timeout_seconds:
            return f"the {self.timeout_seconds:g} s limit (SHEETDROP_READER_TIMEOUT_S)"
        bound, base, per_mib = self.time_bound(content_bytes), self.time_base_seconds, self.time_per_mib_seconds
        return (f"its time bound of {bound:.3g} s ({base:g} s + {per_mib:g} s per MiB of its "
                f"{content_bytes / 1024**2:.3g} MiB of content, at most SHEETDROP_READER_TIMEOUT_S="
                f"{self.timeout_seconds:g} s)")


@dataclass(frozen=True)
class Job:
    src: str  # the workbook
    staging: str  # where the reader writes its parquet files and its outcome
    source: str  # recorded in the parquet metadata
    version: str  # converter version, recorded in the parquet metadata
    include_hidden: bool
    limits: Limits
    cores: int  # sheets parsed at once, at most
    options: ReadOptions = field(default_factory=ReadOptions)  # the folder's read options
    #: By sheet name, the column types its dataset's previous version has (``"schema_changes": "rescue"``).
    previous: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SheetResult:
    index: int
    sheet: str
    file: str  # in staging
    rows: int
    columns: int
    bytes: int
    column_types: dict[str, str]
    null_counts: dict[str, int]
    error_counts: dict[str, int]
    header: str  # where the header was found (HeaderChoice.describe)
    warnings: list[str]
    rescued: dict[str, int]  # column → cells moved to _rescued_data


@dataclass(frozen=True)
class Skip:
    sheet: str
    why: str


@dataclass(frozen=True)
class Outcome:
    sheets: list[SheetResult] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    rejected: dict[str, str] | None = None  # WorkbookRejected.to_wire()
    notes: list[str] = field(default_factory=list)  # how sheets were read, for the log


def to_json(obj: Job | Outcome) -> str:
    return json.dumps(asdict(obj), ensure_ascii=False)


def job_from_json(text: str) -> Job:
    data = json.loads(text)
    options = {**data["options"], "include": tuple(data["options"]["include"]),
               "exclude": tuple(data["options"]["exclude"])}
    return Job(**{**data, "limits": Limits(**data["limits"]), "options": ReadOptions(**options)})


def outcome_from_json(text: str) -> Outcome:
    """The reader's answer, checked field by field (a wrong shape raises ValueError)."""
    data: Any = json.loads(text)
    if not isinstance(data, dict) or set(data) != {f.name for f in fields(Outcome)}:
        raise ValueError("not an outcome")
    return Outcome(
        sheets=[SheetResult(**item) for item in data["sheets"]],
        skipped=[Skip(**item) for item in data["skipped"]],
        rejected=data["rejected"],
        notes=[str(n) for n in data["notes"]],
    )
