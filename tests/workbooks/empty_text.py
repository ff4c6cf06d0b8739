"""Formula cells that return "" as Excel writes them: ``<c t="str"><f>""</f><v></v></c>``, text holding
nothing. xlsxwriter writes such a formula without the type, which readers take for an empty cell."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

_EMPTY_FORMULA = re.compile(rb'(<c r="[A-Z]+\d+"(?: s="\d+")?)(><f>""</f>)')


def typed_as_text(path: Path) -> Path:
    """Rewrite ``path`` in place: every ``=""`` formula cell of every sheet typed as text."""
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    for name in parts:
        if name.startswith("xl/worksheets/"):
            parts[name] = _EMPTY_FORMULA.sub(rb'\1 t="str"\2', parts[name])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return path
