"""What ``sheetdrop smoke`` prints, read back by the tests of both backends (tests/test_smoke.py, tests/aml2)."""

from __future__ import annotations


def items(out: str) -> dict[str, str]:
    """Each item line: key -> 'confirmed' or 'NOT confirmed' and its evidence."""
    lines = out[out.index("what only a real workspace confirms:"):].splitlines()[1:]
    return {line.split()[0]: line.split(None, 1)[1] for line in lines if line.startswith("  ")}
