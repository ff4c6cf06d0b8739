"""What `sheetdrop smoke` saw, in one vocabulary for every backend: each uploaded version's run with its times, its
step's log and datasets, and each item of the docs' "What only a real workspace confirms" as confirmed or not, with
the values that decided it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from sheetdrop.settings import Settings
    from sheetdrop.submit.service import ServiceClient

#: The step's log lines the smoke reads (step/sheetdrop_step/extract.py prints them).
ARGUMENTS_LINE = "arguments: "
SETTINGS_LINE = "settings: "
OUTPUT_LINE = "output: "
INPUT_LINE = "input: read "
DATASET_LINE = "dataset: "
CONVERTED_LINE = re.compile(r"^converted: .* in (?P<seconds>[0-9.]+) s$", re.MULTILINE)
#: What a refused storage or workspace call, or an identity without a token, looks like in a step log: Storage's
#: error codes and azure-core's status text in an HttpResponseError, azure-identity's CredentialUnavailableError, the
#: step's own error line.
REFUSED = re.compile(r"AuthorizationPermissionMismatch|AuthorizationFailure|\bHTTP 403\b|\b403 Forbidden\b|"
                     r"\(403\)|CredentialUnavailableError|error: storage-unreachable")
#: The common runtime's output mount (docs/azureml.md, "Where the step writes"): …/cap/data-capability/wd/<output>.
COMMON_RUNTIME_MOUNT = re.compile(r"/cap/data-capability/wd/extracted/?$")


class SmokeFailure(RuntimeError):
    """A step of the smoke test could not be done; the message says what was seen and what to do next."""


@dataclass
class Dataset:
    """One registered version: ``name:version`` and where its parquet is."""

    ref: str
    datastore: str
    path: str
    created: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: Every datastore path the registration lists (a table version: one glob per segment; ``path`` is the first).
    paths: list[str] = field(default_factory=list)


@dataclass
class Observed:
    """One uploaded blob version and what became of it."""

    label: str
    blob: str
    etag: str
    uploaded: float
    claimed: float | None = None
    run_id: str = ""
    status: str = ""
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    step_run_id: str = ""
    step_started: float | None = None
    step_ended: float | None = None
    log: str = ""
    datasets: list[Dataset] = field(default_factory=list)
    #: Whatever the backend read that decides an item (tags, run definition, job resource, …).
    seen: dict[str, Any] = field(default_factory=dict)

    def line(self, prefix: str) -> str | None:
        """The first line of the step log that starts with ``prefix`` (without it)."""
        for line in self.log.splitlines():
            if line.startswith(prefix):
                return line[len(prefix):]
        return None

    def step_seconds(self) -> float | None:
        found = CONVERTED_LINE.search(self.log)
        return float(found["seconds"]) if found else None


@dataclass(frozen=True)
class Item:
    """One item of the docs' table, by its stable key (tests/test_infra.py, REAL_WORKSPACE_ITEMS)."""

    key: str
    confirmed: bool
    evidence: str


def parse_time(text: str | None) -> float | None:
    """An ISO 8601 time as AzureML writes it (``Z``, up to 7 fraction digits) as seconds since the epoch."""
    if not text:
        return None
    match = re.fullmatch(r"(.*?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?", text.strip())
    if not match:
        return None
    base, fraction, zone = match.groups()
    stamp = datetime.fromisoformat(base + (f".{fraction[:6].ljust(6, '0')}" if fraction else "")
                                   + ("+00:00" if zone in (None, "Z") else zone))
    return stamp.timestamp()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if abs(seconds) < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s"


#: Where ARM is, unless azd's environment names another (AZUREML_ARM_URL).
ARM_URL = "https://management.azure.com"


@dataclass
class Context:
    """What every part of a smoke run shares: the settings, azd's environment, the REST client, where it prints."""

    settings: Settings
    #: azd's environment (`azd env get-values`).
    values: dict[str, str]
    service: ServiceClient
    out: TextIO
    poll: float
    sleep: Callable[[float], None] = time.sleep

    @property
    def arm_url(self) -> str:
        return (self.values.get("AZUREML_ARM_URL") or ARM_URL).rstrip("/")
