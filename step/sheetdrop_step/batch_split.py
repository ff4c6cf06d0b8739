"""``python -m sheetdrop_step.batch_split --manifest M --groups DIR``: AzureML v2's batch pipeline's first step
(pipeline/v2/batch_split.yml). The manifest, a literal input, becomes one file per dataset in ``DIR``, each the
dataset's versions in manifest order with their positions, for the parallel batch step to divide into mini-batches:
a dataset's versions stay together, so they are converted and registered in the order they were written
(docs/azureml-v2.md, "Batch jobs")."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sheetdrop_contract import batch, contract


def groups(versions: list[batch.PinnedVersion]) -> dict[int, list[dict[str, object]]]:
    """By the position of each dataset's first version: its versions, each with its position."""
    first: dict[str, int] = {}
    found: dict[int, list[dict[str, object]]] = {}
    for position, version in enumerate(versions):
        start = first.setdefault(version.dataset_name, position)
        found.setdefault(start, []).append({"position": position, **version.to_json()})
    return found


def read_group(path: Path) -> list[tuple[int, batch.PinnedVersion]]:
    """A file :func:`main` wrote: its versions with their positions in the manifest."""
    items = json.loads(path.read_text(encoding="utf-8"))
    return [(int(item.pop("position")), batch.PinnedVersion.from_json(item)) for item in items]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sheetdrop_step.batch_split", description=__doc__)
    parser.add_argument(f"--{batch.MANIFEST_PARAMETER}", required=True)
    parser.add_argument("--groups", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        versions = batch.parse_manifest(contract.decode_argument(args.manifest, batch.MANIFEST_PARAMETER))
    except ValueError as exc:
        print(f"error: arguments: {exc}", file=sys.stderr)
        return 3
    args.groups.mkdir(parents=True, exist_ok=True)  # AzureML does not create an output folder
    for start, items in groups(versions).items():
        (args.groups / f"{start:06d}.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    print(f"{len(versions)} versions in {len(groups(versions))} datasets", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
