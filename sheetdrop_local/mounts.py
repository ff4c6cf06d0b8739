"""Where the local runner puts a step's output: the mount an emulation (``sheetdrop_local.emulations``) lays out.

Today's AzureML (the common runtime) mounts a job's data under ``<job root>/cap/data-capability/wd/<name>``
and says so in ``AZUREML_CR_DATA_CAPABILITY_PATH``; around 2020 it mounted datastores at
``<run>/mounts/<datastore>/<path>`` (docs/azureml.md, "Where the step writes"). The step must work under both,
because it never learns its output's datastore path from the mount path; the runner reproduces today's layout
by default and the legacy one when ``LOCAL_MOUNT_LAYOUT=legacy``. There is no input mount: the step reads the
blob version itself (sheetdrop_step.source), so no blob name ever becomes a path here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

MountLayout = Literal["common-runtime", "legacy"]
MOUNT_LAYOUTS: tuple[MountLayout, ...] = get_args(MountLayout)


@dataclass(frozen=True)
class StepMounts:
    output_dir: Path
    #: The environment variables AzureML sets for these mounts.
    env: dict[str, str] = field(default_factory=dict)
    #: What to remove when the run is over.
    roots: tuple[Path, ...] = ()
