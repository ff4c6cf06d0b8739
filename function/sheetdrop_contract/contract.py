"""The extract step's contract: the one place where the Function, the pipeline builder, the local
runner and the step itself agree on names, arguments, tags, step settings and the naming rule.

Plain data and pure functions, standard library only, because the Function, the step's snapshot
(``pipeline.snapshot`` copies this package in), the pipeline builders and the local runner all import it,
always as ``sheetdrop_contract.contract``. README.md, "Layout", says who reads what.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

STEP_NAME = "extract"
#: The entry script at the root of the step's snapshot.
SCRIPT_NAME = "extract.py"

#: DataPath PipelineParameter that each submission points at the new blob.
INPUT_PARAMETER = "input_datapath"
#: String PipelineParameter: the dataset name derived from the blob's path.
DATASET_NAME_PARAMETER = "dataset_name"
#: String PipelineParameter: the blob version (source_version()), so that the step knows what it
#: reads and tags its run with it whether or not the service kept the submission's tags.
SOURCE_PARAMETER = "source_version"
#: String PipelineParameter: the folder's read options (read_options.to_parameter()), shown on the run.
READ_OPTIONS_PARAMETER = "read_options"
#: The PipelineData output. Where it is mounted is up to the runtime; where it lives on its
#: datastore is not: see output_relative_path().
OUTPUT_NAME = "extracted"
#: The DataPath parameter's default; every submission overrides it.
PLACEHOLDER_RELATIVE_PATH = "placeholder/placeholder.xlsx"
PLACEHOLDER_DATASET_NAME = "placeholder"
PLACEHOLDER_SOURCE = "{}"
PLACEHOLDER_READ_OPTIONS = "{}"

#: The step's argv options, in order; the step's parser and step_arguments() both read this.
ARGUMENTS = ("input_extract", "output_extract", "output_datastore", "dataset_name", "source_version", "read_options")

#: Tags that identify a blob version on a pipeline run and on every dataset version it registers.
SOURCE_TAGS = ("source_container", "source_blob", "source_etag")
#: The Function invocation that submitted the run (on the run and carried onto its datasets).
INVOCATION_TAG = "function_invocation_id"

T = TypeVar("T")


def step_arguments(input_extract: T, output_extract: T, output_datastore: T, dataset_name: T,
                   source_version: T, read_options: T) -> list[object]:
    """The step's argv after the script name.

    AzureML passes SDK objects (a DataPath binding, a PipelineData, PipelineParameters) that it
    replaces with mount paths and values at run time; the local runner passes the strings those become.
    """
    values = (input_extract, output_extract, output_datastore, dataset_name, source_version, read_options)
    return [item for name, value in zip(ARGUMENTS, values, strict=True) for item in (f"--{name}", value)]


def output_relative_path(step_run_id: str, output_name: str = OUTPUT_NAME) -> str:
    """Where a PipelineData lives on its datastore: ``azureml/<step run id>/<output name>``
    (docs/azureml.md, "Where the step writes")."""
    return f"azureml/{step_run_id}/{output_name}"


class OutputPathError(RuntimeError):
    """The run's own description of the output disagrees with the step's arguments or the rule."""


def resolve_output(data_references: Mapping[str, Any] | None, name: str, step_run_id: str, datastore: str) -> str:
    """The output's path on its datastore. The run definition's data reference is the authority;
    the rule ``azureml/<step run id>/<name>`` stands in where the run definition has none, and
    a run definition that disagrees with it (or with ``--output_datastore``) is an error."""
    expected = output_relative_path(step_run_id, name)
    reference = (data_references or {}).get(name)
    if not reference:
        return expected
    store, path = reference.get("dataStoreName"), str(reference.get("pathOnDataStore") or "").strip("/")
    if store and store != datastore:
        raise OutputPathError(f"the run definition puts output {name!r} on datastore {store!r}, but the step "
                              f"was given --output_datastore {datastore}")
    if path and path != expected:
        raise OutputPathError(f"the run definition puts output {name!r} at {path!r}, not at {expected!r} "
                              f"(azureml/<step run id>/<output>); registering either could point at nothing")
    return expected


def source_tags(container: str, blob: str, etag: str) -> dict[str, str]:
    return dict(zip(SOURCE_TAGS, (container, blob, etag), strict=True))


def source_version(container: str, blob: str, etag: str) -> str:
    """The blob version as the SOURCE_PARAMETER's value."""
    return json.dumps(source_tags(container, blob, etag), sort_keys=True, ensure_ascii=False)


def parse_source_version(text: str) -> dict[str, str]:
    """The source tags from a SOURCE_PARAMETER value; ``{}`` (the placeholder) when none was given."""
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"--{SOURCE_PARAMETER} is not JSON: {text[:200]!r}") from None
    if not isinstance(value, dict) or (value and set(value) != set(SOURCE_TAGS)) or \
            not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"--{SOURCE_PARAMETER} must be an object with {', '.join(SOURCE_TAGS)}: {text[:200]!r}")
    return value


@dataclass(frozen=True)
class Registration:
    """One dataset version the step registers: with AzureML's registry, or handed to the local
    runner, which applies it once the output is uploaded."""

    name: str
    datastore: str
    relative_path: str
    description: str
    tags: dict[str, str]


# -- step settings -------------------------------------------------------------------------------------


class StepSettingError(ValueError):
    """A bad step setting; the message names the setting and what is allowed."""


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a yes/no value (1/0, true/false, yes/no, on/off)")


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(f"not a{'n integer' if kind is int else ' number'}") from None
        if value <= 0:
            raise ValueError("not positive")
        return value

    return parse


@dataclass(frozen=True)
class StepSetting:
    name: str
    default: float | bool
    parse: Callable[[str], float | bool]
    help: str


#: The step's own settings, as environment variables (its argv is fixed above). The publisher
#: puts them into the step's run configuration; the local runner passes them through.
STEP_SETTINGS = (
    StepSetting("SHEETDROP_INCLUDE_HIDDEN", False, _flag, "also convert hidden sheets (yes/no)"),
    StepSetting("SHEETDROP_MAX_FILE_MB", 512, _positive(float), "largest workbook accepted, MiB"),
    StepSetting("SHEETDROP_MAX_CELLS", 60_000_000, _positive(int),
                "largest sheet area (rows x columns) accepted"),
    StepSetting("SHEETDROP_READER_MEMORY_MB", 6144, _positive(float),
                "address-space limit of each reader process, MiB"),
    StepSetting("SHEETDROP_READER_TIMEOUT_S", 900, _positive(float), "time limit of each reader process, seconds"),
)
STEP_SETTING_NAMES = tuple(s.name for s in STEP_SETTINGS)
STEP_DEFAULTS = {s.name: s.default for s in STEP_SETTINGS}


def read_step_settings(env: Mapping[str, str]) -> dict[str, float | bool]:
    """Every step setting, from ``env`` or its default; a bad value is an error naming the setting."""
    values: dict[str, float | bool] = {}
    for setting in STEP_SETTINGS:
        raw = env.get(setting.name, "").strip()
        try:
            values[setting.name] = setting.parse(raw) if raw else setting.default
        except ValueError as exc:
            raise StepSettingError(f"{setting.name}={raw!r} is {exc} ({setting.help})") from None
    return values


# -- naming ----------------------------------------------------------------------------------------------

#: Leaves room for a ``_<sheet>`` suffix within AzureML's 255-character dataset names.
MAX_NAME = 120


def slug(text: str, fallback: str) -> str:
    """The one naming rule for dataset names and sheet files: lowercase ``a-z0-9_``, starting with a
    letter or digit (``Sales Team-EMEA`` → ``sales_team_emea``); ``fallback`` when nothing is left.
    A name cut to MAX_NAME keeps a short hash of the whole, so long names that share a beginning
    stay apart."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        name = f"{name[:MAX_NAME - 9].rstrip('_')}_{digest}"
    return name or fallback


#: On every dataset version: the workbook-level dataset name it was registered for, so that a folder's
#: own dataset that happens to look like ``<base>_<sheet>`` (``sales/emea`` → ``sales_emea``) is not
#: taken for a sheet of ``base``'s workbook.
BASE_TAG = "dataset_base"


def sheet_dataset_name(base: str, sheet_slug: str, sheet_count: int) -> str:
    """The dataset a sheet feeds: one sheet keeps the workbook's dataset name ``base``; several get
    ``<base>_<sheet slug>`` each. :func:`named_like_a_sheet_of` and :func:`fed_by` read names the same way."""
    return base if sheet_count == 1 else f"{_sheet_prefix(base)}{sheet_slug}"


def _sheet_prefix(base: str) -> str:
    return f"{base}_"


def named_like_a_sheet_of(name: str, base: str) -> bool:
    """Whether ``name`` has the shape of a dataset a workbook named ``base`` feeds (``base`` or
    ``<base>_<sheet>``): what a registry is asked for before the tags decide (:func:`fed_by`)."""
    return name == base or name.startswith(_sheet_prefix(base))


def fed_by(name: str, tags: Mapping[str, str], base: str) -> bool:
    """Whether the dataset ``name``, whose latest version carries ``tags``, is one a workbook named
    ``base`` feeds: named like one and tagged with ``base`` (a version registered before the base was
    tagged: only the bare name counts)."""
    return named_like_a_sheet_of(name, base) and tags.get(BASE_TAG, name) == base


# -- AzureML v2 (batch endpoint -> pipeline component -> this step as a command component) -------------

#: Set to "v2" in the command component's environment: the step then reports to the v2 context (MLflow
#: and data assets) instead of azureml-core's Run (sheetdrop_step.contexts).
JOB_API_ENV = "SHEETDROP_JOB_API"
#: A datastore path as v2 jobs and data assets write it (azure-ai-ml's SHORT_URI_FORMAT).
DATASTORE_URI = re.compile(r"^azureml://datastores/(?P<datastore>[^/]+)/paths/(?P<path>.+)$")


def datastore_uri(datastore: str, path: str) -> str:
    return f"azureml://datastores/{datastore}/paths/{path}"


def resolve_output_v2(job_outputs: Mapping[str, Any] | None, name: str, job_name: str, datastore: str) -> str:
    """The v2 output's path on its datastore. The job's own output definition (an ``azureml://datastores/
    <ds>/paths/<path>`` URI) is the authority; a job that states none has the service's default place,
    ``azureml/<job name>/<output name>`` on the default datastore (the place azure-ai-ml itself looks,
    docs/azureml-v2.md). A URI on another datastore, or one with an unresolved ``${{…}}``, is an error."""
    output = (job_outputs or {}).get(name) or {}
    uri = str(output.get("uri") or output.get("path") or "").strip()
    if not uri:
        return output_relative_path(job_name, name)
    match = DATASTORE_URI.match(uri)
    if not match or "${{" in uri:
        raise OutputPathError(f"the job's output {name!r} is {uri!r}, not a resolved azureml://datastores/<name>/"
                              "paths/<path> URI; registering it could point at nothing")
    if match["datastore"] != datastore:
        raise OutputPathError(f"the job puts output {name!r} on datastore {match['datastore']!r}, but the step was "
                              f"given --output_datastore {datastore}")
    return match["path"].strip("/")
