"""What the azd hooks share: the tools they call, the azd environment, one-line errors.

Standard library only: azd runs these hooks with the python3 it finds (py on Windows) in a virtual
environment it makes from this folder's requirements.txt, which is empty on purpose. Every Azure call
goes through the Azure CLI (`az`), signed in as whoever runs azd; `tests/test_azd_hooks.py` parses each
call the hooks make with azure-cli's own parser.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The repository: the publishers run from here (`python -m pipeline.publish`), as `make` does.
ROOT = Path(__file__).resolve().parents[2]
README = 'README, "Deploy to Azure"'


class HookError(Exception):
    """Stops the hook with this one line on stderr and exit code 1 (azd then stops too)."""


def tool(name: str) -> str:
    """The executable `name` on PATH (az.cmd, make.exe … on Windows), or a one-line error."""
    path = shutil.which(name)
    if path is None:
        raise HookError(f"{name} is not on PATH ({README}, prerequisites)")
    return path


def run(argv: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool from PATH with its output captured (stdin is never read: CI has none)."""
    return subprocess.run([tool(argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def az(*args: str) -> str:
    """`az …`; its stdout, or a one-line error with the last line az printed."""
    result = run(["az", *args])
    if result.returncode != 0:
        raise HookError(f"az {args[0]} {args[1] if len(args) > 1 else ''} failed: {last_line(result.stderr)}")
    return result.stdout.strip()


def az_json(*args: str) -> Any:
    """`az … --output json`, parsed."""
    out = az(*args, "--output", "json")
    return json.loads(out) if out else None


def value(name: str, *, required: bool = True) -> str:
    """A value of the azd environment: azd gives hooks every one as an environment variable; run by hand,
    the hook asks `azd env get-value`."""
    found = os.environ.get(name, "").strip()
    if not found and shutil.which("azd"):
        result = run(["azd", "env", "get-value", name])
        found = result.stdout.strip() if result.returncode == 0 else ""
    if not found and required:
        raise HookError(f"{name} is not in the azd environment: run `azd provision` first")
    return found


def set_values(values: dict[str, str]) -> None:
    """Store values in the azd environment (`azd env set K=V …`), where the next provision reads them
    (infra/main.parameters.json). An empty value clears one."""
    result = run(["azd", "env", "set", *(f"{key}={val}" for key, val in values.items())])
    if result.returncode != 0:
        raise HookError(f"azd env set failed: {last_line(result.stderr)}")


def main(hook: Callable[[], None]) -> None:
    try:
        hook()
    except HookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
