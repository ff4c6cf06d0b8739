"""How a new version's columns differ from the previous version's, said in one line a person reads.

Each dataset version carries its schema as a tag (``schema``: column → type, JSON); the step
compares the new one with the latest registered one and records the difference on the version and
the run, or fails the run when the folder's options say ``"schema_changes": "fail"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

SCHEMA_TAG = "schema"
CHANGE_TAG = "schema_change"


class SchemaChanged(Exception):
    """A dataset's columns changed and the folder's options say ``"schema_changes": "fail"``."""


@dataclass(frozen=True)
class SchemaChange:
    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    #: old name → new name: one column gone and one come at the same position with the same type.
    renamed: dict[str, str] = field(default_factory=dict)
    #: column → (old type, new type)
    retyped: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.renamed or self.retyped)

    def describe(self) -> str:
        parts = [f"{name} {old} → {new}" for name, (old, new) in self.retyped.items()]
        parts += [f"renamed {old} → {new}" for old, new in self.renamed.items()]
        parts += [f"added {name} ({kind})" for name, kind in self.added.items()]
        parts += [f"removed {name} ({kind})" for name, kind in self.removed.items()]
        return "; ".join(parts) or "none"


def compare(previous: dict[str, str], current: dict[str, str]) -> SchemaChange:
    added = {k: v for k, v in current.items() if k not in previous}
    removed = {k: v for k, v in previous.items() if k not in current}
    retyped = {k: (previous[k], v) for k, v in current.items() if k in previous and previous[k] != v}
    renamed = {}
    if len(added) == len(removed) == 1:
        (new, new_type), (old, old_type) = next(iter(added.items())), next(iter(removed.items()))
        if new_type == old_type and list(current).index(new) == list(previous).index(old):
            renamed, added, removed = {old: new}, {}, {}
    return SchemaChange(added, removed, renamed, retyped)


def schema_tags(current: dict[str, str], previous: dict[str, str] | None) -> dict[str, str]:
    """The tags a new version carries about its columns."""
    change = "first version" if previous is None else compare(previous, current).describe()
    return {SCHEMA_TAG: json.dumps(current), CHANGE_TAG: change}


def previous_schema(tags: dict[str, str]) -> dict[str, str] | None:
    try:
        return dict(json.loads(tags[SCHEMA_TAG]))
    except (KeyError, ValueError, TypeError):
        return None
