"""The batch step's entry script for AzureML v2's parallel job (pipeline/v2/batch_component.yml): AzureML's agent
imports it in each worker process, calls ``init()`` once and ``run(mini_batch)`` for each mini-batch, a list of the
split step's files (one dataset's versions each), and appends every row ``run`` returns to the outcomes file. Thin on
purpose, as ``extract.py``: the work is ``sheetdrop_step.batch``."""

from sheetdrop_step.batch import parallel_init, parallel_run


def init() -> None:
    parallel_init()


def run(mini_batch: list[str]) -> list[str]:
    return parallel_run(mini_batch)
