"""The extract step's contract, as plain data.

The AzureML pipeline (``pipeline.build``) and the local runner
(``sheetdrop.runner``) both take the step's names and argument list from here,
so the published step and the local run cannot drift apart.
"""

from __future__ import annotations

from typing import TypeVar

STEP_NAME = "extract"
SOURCE_DIRECTORY = "step_scripts"
SCRIPT_NAME = "extract.py"

#: DataPath PipelineParameter that each submission points at the new blob.
INPUT_PARAMETER = "input_datapath"
#: String PipelineParameter: the dataset name derived from the blob's path.
DATASET_NAME_PARAMETER = "dataset_name"
#: PipelineData output; AzureML mounts it at .../mounts/<datastore>/azureml/<uuid>/extracted.
OUTPUT_NAME = "extracted"
#: The DataPath parameter's default; every submission overrides it.
PLACEHOLDER_RELATIVE_PATH = "placeholder/placeholder.xlsx"
PLACEHOLDER_DATASET_NAME = "placeholder"

#: The step's own settings, passed as environment variables (its argv is fixed above). The
#: publisher copies them into the step's AzureML Environment; the local runner passes them through.
STEP_SETTINGS = (
    "SHEETDROP_INCLUDE_HIDDEN",
    "SHEETDROP_MAX_FILE_MB",
    "SHEETDROP_MAX_CELLS",
    "SHEETDROP_READER_MEMORY_MB",
    "SHEETDROP_READER_TIMEOUT_S",
)

T = TypeVar("T")


def step_arguments(input_extract: T, output_extract: T, output_datastore: T, dataset_name: T) -> list[object]:
    """The step's argv after the script name.

    AzureML passes SDK objects (a DataPath binding, a PipelineData, a
    PipelineParameter) that it replaces with mount paths at run time; the local
    runner passes the strings those become.
    """
    return [
        "--input_extract", input_extract,
        "--output_extract", output_extract,
        "--output_datastore", output_datastore,
        "--dataset_name", dataset_name,
    ]


def output_relative_path(step_run_id: str) -> str:
    """Where AzureML puts a PipelineData on its datastore: ``azureml/<step run id>/<output name>``."""
    return f"azureml/{step_run_id}/{OUTPUT_NAME}"
