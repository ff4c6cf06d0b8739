"""A fresh virtual environment holding one requirements file and nothing else, as a deployment builds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fresh_venv(env_dir: Path, requirements: Path) -> Path:
    """Create the environment and return its python. This venv's pip installs into it (--prefix, so it needs
    no pip of its own; --ignore-installed, so nothing this venv has counts as installed there)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
                    "--ignore-installed", "--prefix", str(env_dir), "-r", str(requirements)], check=True)
    return env_dir / "bin" / "python"
