"""The azd packaging replica reproduces what azd zipped for this repository at b5e30cf, and azd's matching rules.

fixtures/b5e30cf/ holds b5e30cf's root layout as far as packaging goes: its .funcignore, function_app.py,
host.json and requirements.txt as they were, and its package folders with placeholder files of the same
names. azd >= 1.23.13 zipped only the three root files from it (`*` excludes the folders `sheetdrop/` and
`step_scripts/`, which azd then never enters), so the deployed app could not import `sheetdrop`.
The expectations below were checked against azd's own createDeployableZip and go-gitignore, built from source.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from azd_walk import azd_function_zip_entries, extract

B5E30CF = Path(__file__).resolve().parent / "fixtures" / "b5e30cf"
ROOT_FILES = ["function_app.py", "host.json", "requirements.txt"]


def add_untracked_files(root: Path) -> None:
    """What a developer's checkout also holds (git ignores these, so the fixture cannot)."""
    for name, body in {
        ".venv/pyvenv.cfg": "home = /usr/bin\n",
        ".venv/lib/python3.11/site-packages/azure/functions/__init__.py": "",
        "__pycache__/function_app.cpython-311.pyc": "",
        "sheetdrop/__pycache__/trigger.cpython-311.pyc": "",
        "node_modules/azurite/package.json": "{}",
        "local.settings.json": "{}",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)


def test_fixture_holds_the_package_folders_the_walk_must_leave_out() -> None:
    assert (B5E30CF / ".funcignore").read_text().splitlines()[8:10] == ["*", "!/function_app.py"]
    assert (B5E30CF / "sheetdrop" / "submit" / "azureml.py").is_file()
    assert (B5E30CF / "step_scripts" / "contract.py").is_file()
    assert "from sheetdrop.trigger import" in (B5E30CF / "function_app.py").read_text()


def test_b5e30cf_layout_zips_only_the_three_root_files() -> None:
    assert azd_function_zip_entries(B5E30CF) == ROOT_FILES


def test_b5e30cf_layout_with_a_developers_untracked_files(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(B5E30CF, checkout)
    add_untracked_files(checkout)
    assert azd_function_zip_entries(checkout) == ROOT_FILES


def test_extract_writes_the_zipped_files_with_their_bytes(tmp_path: Path) -> None:
    assert extract(B5E30CF, tmp_path / "app") == ROOT_FILES
    written = sorted(path.relative_to(tmp_path / "app").as_posix() for path in (tmp_path / "app").rglob("*"))
    assert written == ROOT_FILES
    for name in ROOT_FILES:
        assert (tmp_path / "app" / name).read_bytes() == (B5E30CF / name).read_bytes()


@pytest.mark.parametrize(("funcignore", "files", "zipped"), [
    # a `!` line cannot bring back a file inside a folder that is itself left out
    (b"build/\n!build/keep.py\n", ["build/keep.py", "a.py"], ["a.py"]),
    # an unanchored `name/` leaves out that folder at any depth; a path with an inner `/` only from the root
    (b"tests/\nsheetdrop/x.py\n", ["tests/t.py", "pkg/tests/t.py", "pkg/sheetdrop/x.py", "sheetdrop/x.py"],
     ["pkg/sheetdrop/x.py"]),
    # `!` lines keep their trailing blanks; other lines lose them; CRLF is one line end; a BOM is dropped
    (b"\xef\xbb\xbf*.txt\r\n!keep.txt  \r\nold.py   \r\n", ["keep.txt", "old.py", "new.py"], ["new.py"]),
    # a CR not followed by LF drops its line, even at the end of the file
    (b"a.py\nb.py\r", ["a.py", "b.py"], ["b.py"]),
    # with a .funcignore, azd's Python defaults are gone: .venv and __pycache__ are zipped unless listed
    (b"", [".venv/pyvenv.cfg", "__pycache__/m.pyc", "local.settings.json", ".azure/x", "m.py"],
     [".venv/pyvenv.cfg", "__pycache__/m.pyc", "m.py"]),
    # without one, a folder holding pyvenv.cfg and any __pycache__ are left out
    (None, ["venv2/pyvenv.cfg", "venv2/lib/x.py", "pkg/__pycache__/m.pyc", "m.py", "sub/.funcignore"], ["m.py"]),
])
def test_matching_rules_checked_against_azd(
    tmp_path: Path, funcignore: bytes | None, files: list[str], zipped: list[str]
) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    if funcignore is not None:
        (tmp_path / ".funcignore").write_bytes(funcignore)
    assert azd_function_zip_entries(tmp_path) == zipped


def test_a_lone_slash_line_is_refused_as_azd_would_crash(tmp_path: Path) -> None:
    (tmp_path / ".funcignore").write_text("/\n")
    (tmp_path / "m.py").write_text("")
    with pytest.raises(ValueError, match="panics"):
        azd_function_zip_entries(tmp_path)
