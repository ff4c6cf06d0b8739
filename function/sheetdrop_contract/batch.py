"""The batch step's contract, beside the single version's (``contract``): many pinned blob versions in one run
or job, where each version's output lands and how each version's outcome is recorded.

* **In**: a manifest, the ``manifest`` parameter (one shell-inert word, ``contract.encode_argument``, as every
  value): a JSON list of pinned versions, each its container, blob, etag, attempt (when above 1), dataset name and
  read options, in the order the versions were written. The step reads each one by its etag, as the single step
  reads its one (``sheetdrop_step.source``).
* **Out**: version ``i`` of the manifest (0-based) writes its sheets to ``<output>/<i>/<sheet>.parquet``, where
  ``<output>`` is where the single step would write (``contract.output_relative_path``), and registers one dataset
  version per sheet, tagged as a single run tags them (the source tags name the version, ``run_id`` the batch).
* **Outcomes**: one line per version in ``<output>/outcomes.jsonl`` (:class:`VersionOutcome`): ``converted``,
  ``rejected`` (with the code and reason a single run would end with), ``superseded`` (naming the newer etag;
  nothing registered) or ``failed`` (not the workbook's fault, so worth running again: ``input-gone``,
  ``storage-unreachable``, ``reader-killed``, …, the reason says what); and the counts among the run's metrics
  (``versions_<outcome>``). A bad workbook fails its version, never the batch.

Plain data, standard library only, as ``contract``: the Function, the step, the publishers and the local runner
read it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from sheetdrop_contract import contract

#: String parameter: the manifest (:func:`encode_manifest`). Empty (``[]``) in a single version's run.
MANIFEST_PARAMETER = contract.MANIFEST_PARAMETER
PLACEHOLDER_MANIFEST = "[]"
#: Beside the versions' folders in the output: one JSON line per version (:class:`VersionOutcome`).
OUTCOMES_FILE = "outcomes.jsonl"
#: A manifest is one word of a command line, and Linux takes at most 128 KiB in one (MAX_ARG_STRLEN, 32 pages):
#: the batches a submitter makes stay well below, whatever the names.
MAX_MANIFEST_CHARS = 96 * 1024
#: Versions in one batch at most (a job's outcome, tags and log stay readable; more versions make more batches).
MAX_VERSIONS = 500

Outcome = Literal["converted", "rejected", "superseded", "failed"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
#: Among the run's metrics: how many versions ended each way.
COUNT_METRIC = "versions_{}"
#: On a batch run (v1, and the local run store): the batch's own id, as the submitter named it.
BATCH_TAG = "sheetdrop_batch_id"
#: On a batch run (v1): one tag per version, ``sheetdrop_version_<version_key>``, so run history finds a batch run
#: by any of its versions (the service's runs:query filters on tag equality).
VERSION_TAG_PREFIX = "sheetdrop_version_"
VERSION_TAG_VALUE = "1"


@dataclass(frozen=True)
class PinnedVersion:
    """One version of a manifest: what a single run's parameters say of its one version."""

    container: str
    blob: str
    etag: str
    dataset_name: str
    read_options: str = contract.PLACEHOLDER_READ_OPTIONS
    attempt: int = 1

    def source(self) -> dict[str, str]:
        """Its source tags (with the attempt above 1), as on a single run and every dataset version it makes."""
        return contract.source_tags(self.container, self.blob, self.etag, self.attempt)

    def key(self) -> str:
        return version_key(self.container, self.blob, self.etag, self.attempt)

    def to_json(self) -> dict[str, str]:
        return {**self.source(), contract.DATASET_NAME_PARAMETER: self.dataset_name,
                contract.READ_OPTIONS_PARAMETER: self.read_options}

    @classmethod
    def from_json(cls, item: Any) -> PinnedVersion:
        expected = {*contract.SOURCE_TAGS, contract.DATASET_NAME_PARAMETER, contract.READ_OPTIONS_PARAMETER}
        if not isinstance(item, dict) or not expected <= set(item) <= expected | {contract.ATTEMPT_TAG} or \
                not all(isinstance(v, str) for v in item.values()) or \
                not str(item.get(contract.ATTEMPT_TAG, "1")).isdigit():
            raise ValueError(f"a manifest entry must be an object with {', '.join(sorted(expected))} (and "
                             f"{contract.ATTEMPT_TAG} for a re-run), all strings: {json.dumps(item)[:200]}")
        return cls(item["source_container"], item["source_blob"], item["source_etag"],
                   item[contract.DATASET_NAME_PARAMETER], item[contract.READ_OPTIONS_PARAMETER],
                   contract.attempt_of(item))


def version_key(container: str, blob: str, etag: str, attempt: int = 1) -> str:
    """A short fixed-length key for an attempt of a blob version (what a batch run is tagged and searched by)."""
    return hashlib.sha256(contract.source_version(container, blob, etag, attempt).encode("utf-8")).hexdigest()[:32]


def manifest_json(versions: Iterable[PinnedVersion]) -> str:
    return json.dumps([v.to_json() for v in versions], ensure_ascii=False, separators=(",", ":"))


def encode_manifest(versions: Iterable[PinnedVersion]) -> str:
    """The manifest parameter's value, as the step reads it (encoded: one shell-inert word)."""
    return contract.encode_argument(manifest_json(versions))


def parse_manifest(text: str) -> list[PinnedVersion]:
    """The versions of a (decoded) manifest parameter; ``[]`` (the placeholder) is none."""
    try:
        items = json.loads(text)
    except ValueError:
        raise ValueError(f"--{MANIFEST_PARAMETER} is not JSON: {text[:200]!r}") from None
    if not isinstance(items, list):
        raise ValueError(f"--{MANIFEST_PARAMETER} must be a list of versions: {text[:200]!r}")
    versions = [PinnedVersion.from_json(item) for item in items]
    if len({v.key() for v in versions}) != len(versions):
        raise ValueError(f"--{MANIFEST_PARAMETER} names a version twice")
    return versions


def batches(versions: Iterable[PinnedVersion], max_versions: int = MAX_VERSIONS,
            max_chars: int = MAX_MANIFEST_CHARS) -> Iterator[list[PinnedVersion]]:
    """``versions`` cut, in order, into manifests of at most ``max_versions`` versions and ``max_chars`` encoded
    characters each."""
    current: list[PinnedVersion] = []
    size = len(contract.encode_argument("[]"))
    for version in versions:
        one = len(contract.encode_argument(json.dumps(version.to_json(), ensure_ascii=False,
                                                      separators=(",", ":")))) + len("%2C")
        if one + len(contract.encode_argument("[]")) > max_chars:
            raise ValueError(f"{version.container}/{version.blob}: its manifest entry alone is longer than "
                             f"{max_chars} characters")
        if current and (len(current) >= max_versions or size + one > max_chars):
            yield current
            current, size = [], len(contract.encode_argument("[]"))
        current.append(version)
        size += one
    if current:
        yield current


def version_folder(output_path: str, position: int) -> str:
    """Where version ``position`` of the manifest writes its sheets, under the run's output (a datastore path,
    or a local folder)."""
    return f"{output_path.rstrip('/')}/{position}"


@dataclass
class VersionOutcome:
    """How one version of a batch ended: a line of ``outcomes.jsonl``."""

    position: int
    version: PinnedVersion
    outcome: Outcome
    #: rejected and failed: the word a single run's ``error:`` line starts with (``corrupt``, ``options``,
    #: ``input-gone``, …), and its reason.
    code: str | None = None
    reason: str | None = None
    #: superseded: the etag of the version that replaced this one.
    superseded_by_etag: str | None = None
    #: converted: the dataset versions registered (``name:version``, or a note where the runner registers).
    datasets: list[str] = field(default_factory=list)
    #: converted: what a single run logs as its metrics (sheets, rows, per-file column types, …).
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(self.version.to_json())
        del data["version"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionOutcome:
        names = {*contract.SOURCE_TAGS, contract.ATTEMPT_TAG, contract.DATASET_NAME_PARAMETER,
                 contract.READ_OPTIONS_PARAMETER}
        version = PinnedVersion.from_json({k: v for k, v in data.items() if k in names})
        return cls(version=version, **{k: v for k, v in data.items() if k not in names})


def outcome_counts(outcomes: Iterable[VersionOutcome]) -> dict[str, int]:
    """The run's ``versions_<outcome>`` metrics (every outcome, zero included)."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for item in outcomes:
        counts[item.outcome] += 1
    return {COUNT_METRIC.format(outcome): n for outcome, n in counts.items()}
