"""The extract step's contract: the one place where the Function, the pipeline builder, the local
runner and the step itself agree on names, arguments, tags, step settings and the naming rule.

Plain data and pure functions, standard library only, because the Function, the step's snapshot
(``pipeline.snapshot`` copies this package in), the pipeline builders and the local runner all import it,
always as ``sheetdrop_contract.contract``. README.md, "Layout", says who reads what.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

STEP_NAME = "extract"
#: The entry script at the root of the step's snapshot.
SCRIPT_NAME = "extract.py"

#: String parameter: the input account's blob endpoint (``https://<account>.blob.core.windows.net``). The step
#: reads the blob version itself from there, by its etag (sheetdrop_step.source): a mount pins nothing, and a
#: mounted file's path would carry the blob's name onto a command line.
INPUT_ACCOUNT_PARAMETER = "input_account"
#: String parameter: the dataset name derived from the blob's path.
DATASET_NAME_PARAMETER = "dataset_name"
#: String parameter: the blob version (source_version()): what the step reads, checks and tags its run with.
SOURCE_PARAMETER = "source_version"
#: String parameter: the folder's read options (read_options.to_parameter()), shown on the run.
READ_OPTIONS_PARAMETER = "read_options"
#: v2: the datastore and the path on it where the invocation puts the output (the same place it names in the
#: job's outputData); v1's PipelineData has no path to choose, and its step reads its run definition instead.
OUTPUT_DATASTORE_PARAMETER = "output_datastore"
OUTPUT_PATH_PARAMETER = "output_path"
#: A batch of versions instead of one (``sheetdrop_contract.batch``: its own contract); ``[]`` in a single run.
MANIFEST_PARAMETER = "manifest"
#: The output folder. Where it is mounted is up to the runtime; where it lives on its datastore is not:
#: see output_relative_path().
OUTPUT_NAME = "extracted"
#: The published parameters' defaults; every submission overrides them.
PLACEHOLDER_INPUT_ACCOUNT = "https://placeholder.blob.core.windows.net"
PLACEHOLDER_DATASET_NAME = "placeholder"
PLACEHOLDER_SOURCE = "{}"
PLACEHOLDER_READ_OPTIONS = "{}"

#: The step's argv options, in order; the step's parser and step_arguments() both read this. Every value but
#: output_extract (a mount path the service puts there) is written with encode_argument().
ARGUMENTS = (INPUT_ACCOUNT_PARAMETER, "output_extract", OUTPUT_DATASTORE_PARAMETER, DATASET_NAME_PARAMETER,
             SOURCE_PARAMETER, READ_OPTIONS_PARAMETER)
#: Repeated ``--setting NAME=VALUE``: the step's settings (STEP_SETTINGS and JOB_API_ENV), literal text of
#: the published step's command (v2) or arguments (v1), so its registered form shows them.
SETTING_OPTION = "setting"

#: Tags that identify a blob version on a pipeline run and on every dataset version it registers.
SOURCE_TAGS = ("source_container", "source_blob", "source_etag")
#: A re-run's attempt of a blob version (2, 3, …), beside the source tags; the first attempt has none, so every
#: run and version made before re-runs existed is attempt 1.
ATTEMPT_TAG = "source_attempt"
#: The Function invocation that submitted the run (on the run and carried onto its datasets).
INVOCATION_TAG = "function_invocation_id"
#: On a run that ended superseded: the etag of the version that replaced the one it was submitted for.
SUPERSEDED_TAG = "superseded_by_etag"

#: The step's exit code when storage did not answer its read: not the workbook's fault (the local runner runs it
#: again; in AzureML the job fails with the reason).
EXIT_STORAGE_UNREACHABLE = 4

T = TypeVar("T")

# -- arguments that mean nothing to a shell --------------------------------------------------------------

#: What an argument value keeps as it is. None of these means anything to bash in a word that is not the
#: command (no quote, expansion, glob, comment, redirection, separator or word break), nor to argparse.
#: AzureML substitutes values into the command as raw text and runs it with bash (docs/azureml-v2.md,
#: "Quoting"); no single shell quoting carries both ' and $, so a value carries neither.
_INERT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,:/@+=-")
ENCODED = re.compile(r"(?:[A-Za-z0-9_.,:/@+=-]|%[0-9A-F]{2})*")


def encode_argument(text: str) -> str:
    """``text`` as one shell word that bash and argparse leave alone: every other character percent-encoded
    as UTF-8 (``sales/Q3 report (v2).xlsx`` → ``sales/Q3%20report%20%28v2%29.xlsx``), and a leading ``-``
    too, so that no value reads as an option."""
    encoded = "".join(ch if ch in _INERT else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text)
    return f"%2D{encoded[1:]}" if encoded.startswith("-") else encoded


def decode_argument(text: str, name: str = "argument") -> str:
    """The value :func:`encode_argument` wrote; anything else (a value some tool quoted or expanded on the
    way) is an error naming the option, never a guess."""
    if not ENCODED.fullmatch(text):
        raise ValueError(f"--{name} is not an encoded value (sheetdrop_contract.contract.encode_argument): "
                         f"{text[:200]!r}")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"--{name} does not decode as UTF-8: {text[:200]!r}") from None


def step_arguments(input_account: T, output_extract: T, output_datastore: T, dataset_name: T,
                   source_version: T, read_options: T, *, output_path: T | None = None, manifest: T | None = None,
                   settings: Mapping[str, str] | None = None) -> list[object]:
    """The step's argv after the script name.

    AzureML v1 passes SDK objects (PipelineData, PipelineParameters) that it replaces with a mount path and
    the submission's values at run time; the local runner passes the strings they become (encoded). A batch
    run's ``manifest`` names its versions; its single-version parameters then hold their placeholders.
    """
    values = (input_account, output_extract, output_datastore, dataset_name, source_version, read_options)
    argv = [item for name, value in zip(ARGUMENTS, values, strict=True) for item in (f"--{name}", value)]
    if output_path is not None:
        argv += [f"--{OUTPUT_PATH_PARAMETER}", output_path]
    if manifest is not None:
        argv += [f"--{MANIFEST_PARAMETER}", manifest]
    return argv + setting_arguments(settings or {})


def setting_arguments(settings: Mapping[str, str]) -> list[str]:
    """``--setting NAME=VALUE`` for each step setting given a value (other names are left out)."""
    known = (*STEP_SETTING_NAMES, JOB_API_ENV)
    return [item for name, value in settings.items() if name in known and str(value).strip()
            for item in (f"--{SETTING_OPTION}", f"{name}={encode_argument(str(value).strip())}")]


def parse_step_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The step's argv, decoded; ``settings`` is a dict of the ``--setting`` pairs. A value that is not
    encoded is a ValueError; a missing option ends the process as argparse does."""
    parser = argparse.ArgumentParser(prog=SCRIPT_NAME, description="sheetdrop's extract step")
    for name in ARGUMENTS:
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument(f"--{OUTPUT_PATH_PARAMETER}")
    parser.add_argument(f"--{MANIFEST_PARAMETER}")
    parser.add_argument(f"--{SETTING_OPTION}", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    for name in (*ARGUMENTS, OUTPUT_PATH_PARAMETER, MANIFEST_PARAMETER):
        value = getattr(args, name)
        if name != "output_extract" and value is not None:
            setattr(args, name, decode_argument(value, name))
    args.settings = parse_settings(args.setting)
    return args


def parse_settings(pairs: list[str]) -> dict[str, str]:
    known = (*STEP_SETTING_NAMES, JOB_API_ENV)
    settings = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or name not in known:
            raise StepSettingError(f"--{SETTING_OPTION} {pair[:100]!r} is not NAME=VALUE with a NAME among "
                                   f"{', '.join(known)}")
        settings[name] = decode_argument(value, f"{SETTING_OPTION} {name}")
    return settings


def output_relative_path(job_name: str, output_name: str = OUTPUT_NAME) -> str:
    """Where a job's output lives on its datastore: ``azureml/<job name>/<output name>``. For v1's PipelineData
    the service puts it there (the step run's id; docs/azureml.md, "Where the step writes"); for v2 the
    invocation asks for that place (the requested job's name; docs/azureml-v2.md), the shape of the service's
    default ``<default-datastore>/azureml/<job-name>/<output_name>/``."""
    return f"azureml/{job_name}/{output_name}"


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


def source_tags(container: str, blob: str, etag: str, attempt: int = 1) -> dict[str, str]:
    tags = dict(zip(SOURCE_TAGS, (container, blob, etag), strict=True))
    if attempt > 1:
        tags[ATTEMPT_TAG] = str(attempt)
    return tags


def attempt_of(tags: Mapping[str, str]) -> int:
    """Which attempt of its blob version a run or dataset version is (1 when its tags say none)."""
    return int(tags.get(ATTEMPT_TAG) or 1)


def source_version(container: str, blob: str, etag: str, attempt: int = 1) -> str:
    """The blob version as the SOURCE_PARAMETER's value (compact JSON: fewer characters to encode)."""
    return json.dumps(source_tags(container, blob, etag, attempt), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))


def parse_source_version(text: str) -> dict[str, str]:
    """The source tags from a SOURCE_PARAMETER value; ``{}`` (the placeholder) when none was given."""
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"--{SOURCE_PARAMETER} is not JSON: {text[:200]!r}") from None
    keys = set(value) - {ATTEMPT_TAG} if isinstance(value, dict) else None
    if keys is None or (value and keys != set(SOURCE_TAGS)) or not all(isinstance(v, str) for v in value.values()) \
            or not str(value.get(ATTEMPT_TAG, "2")).isdigit():
        raise ValueError(f"--{SOURCE_PARAMETER} must be an object with {', '.join(SOURCE_TAGS)} (and "
                         f"{ATTEMPT_TAG} for a re-run): {text[:200]!r}")
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
    #: A table version (sheetdrop_contract.table): its parquet files on ``datastore``, and ``relative_path`` is its
    #: manifest; empty for a version of one file (``relative_path`` is that file).
    files: tuple[str, ...] = ()


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

#: ``--setting SHEETDROP_JOB_API=v2`` on the command component's command line: the step then reports to the
#: v2 context (MLflow and data assets) instead of azureml-core's Run (sheetdrop_step.contexts).
JOB_API_ENV = "SHEETDROP_JOB_API"


def datastore_uri(datastore: str, path: str) -> str:
    """A datastore path as v2 jobs and data assets write it (azure-ai-ml's SHORT_URI_FORMAT)."""
    return f"azureml://datastores/{datastore}/paths/{path}"
