"""Which files `azd package`/`azd deploy` put in the zip of a `host: function`, `language: python` service.

A replica, in Python, of azd 1.31.2 (Azure/azure-dev tag cli/azd/v1.31.2, commit 3440050737c1; the same code
since azd 1.23.13, PR #7311), so a test can walk a folder the way azd does without azd:

- cli/azd/pkg/project/project_utils.go `createDeployableZip` and its `onZip` filter: a directory named
  `.azure`, a file named `.funcignore` or `local.settings.json` at any depth is left out; then only
  `<project>/.funcignore` is read (a leading UTF-8 BOM stripped) and a path is left out when the last
  line matching it is not a `!` line. Without a `.funcignore`, Python's defaults apply instead: folders
  holding a `pyvenv.cfg` and folders named `__pycache__`. With one, those defaults are gone.
- cli/azd/pkg/rzip/rzip.go `addDir`, `addFile`, `onSymlink`: the filter runs on every entry before it is
  entered, so nothing under a left-out folder is looked at again; symlinks are followed (a linked folder
  is walked at its real path, at most 40 links deep); empty folders leave no entry.
- cli/azd/pkg/project/service_target.go `ServiceTargetKind.IgnoreFile`: `.funcignore` for `function`.
- github.com/denormal/go-gitignore ae8ad1d07817 (pinned by azd's go.mod), lexer.go, parser.go, pattern.go
  `NewPattern`/`name.Match`/`path.Match`/`any.Match`, gitignore.go `Absolute`/`Relative`, and its
  matcher github.com/danwakefield/fnmatch cbb64ac3d964 `Match`/`rangematch`. Its rules are not git's:
  a `/`-anchored name without another `/` matches the whole relative path with `*` crossing `/`; a
  pattern with an inner `/` always matches from the project root; `a/**` also matches `a`; a `**` not
  between `/`s or the line's ends voids the line; `#` and `!` are special only in a line's first column;
  trailing blanks are dropped except on `!` lines; a line holding a lone CR is dropped; in `[...]` the
  first `]` closes. Where azd crashes or fails (a `/`-only line, a bracket ending in a multibyte character, a file
  name ending in a backslash, with content), the replica raises.

Not modelled: invalid UTF-8 or NUL bytes in .funcignore, non-UTF-8 file names, `dist:` (a service's
output path, which would change the folder walked).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".funcignore"
_MAX_LINK_DEPTH = 40  # rzip.addDir gives up past this many nested symlinked folders

# go-gitignore's lexer tokens after a line's first-column `#` or `!` (lexer.go Next): blanks, `/`, `**`, and
# words, where `\` keeps the next character and a word stops before `**`. Kinds are the group names.
_SPACE, _SEP, _ANY = "space", "sep", "any"
_TOKEN = re.compile(r"(?P<space>[ \t]+)|(?P<sep>/)|(?P<any>\*\*)|(?P<word>(?:\\.?|\*(?!\*)|[^ \t/*\\])+)")


@dataclass(frozen=True)
class _Pattern:
    """One .funcignore line, compiled as go-gitignore's NewPattern does."""

    negated: bool
    anchored: bool
    dir_only: bool
    tokens: tuple[tuple[str, str], ...]  # (kind, text), without the leading `!`, `/` and trailing `/`

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        kinds = {kind for kind, _ in self.tokens}
        glob = "".join(text for _, text in self.tokens)
        if _ANY in kinds:  # any.Match: tokens other than `/` against path components, `**` spanning 0+
            return _match_parts(rel.split("/"), [t for t in self.tokens if t[0] != _SEP])
        if _SEP in kinds:  # path.Match: its fallback repeats the same call, so always from the root
            return _fnmatch(glob, rel, pathname=True)
        return _fnmatch(glob, rel if self.anchored else rel.rsplit("/", 1)[-1], pathname=False)


def _match_parts(parts: list[str], tokens: list[tuple[str, str]]) -> bool:
    if not tokens:
        return not parts
    kind, text = tokens[0]
    if kind == _ANY:
        return _match_parts(parts, tokens[1:]) or (bool(parts) and _match_parts(parts[1:], tokens))
    return bool(parts) and _fnmatch(text, parts[0], pathname=True) and _match_parts(parts[1:], tokens[1:])


def _compile(line: str) -> _Pattern | None:
    """A line as go-gitignore's lexer and parser take it; None when it yields no pattern."""
    if line.startswith("#"):
        return None
    negated = line.startswith("!")
    tokens = [(str(m.lastgroup), m.group()) for m in _TOKEN.finditer(line, 1 if negated else 0)]
    # parser.go: `**` may only follow `/` or open the line, and only `/` or blanks-then-end may follow it;
    # the blanks after `**` are dropped. Any other line is an error, skipped.
    for i, (kind, _) in enumerate(tokens):
        if kind == _ANY and i > 0 and tokens[i - 1][0] != _SEP:
            return None
        if kind == _ANY and i + 1 < len(tokens) and tokens[i + 1][0] != _SEP:
            if tokens[i + 1][0] != _SPACE or i + 2 < len(tokens):
                return None
            tokens = tokens[: i + 1]
            break
    if not tokens:
        return None  # a lone `!`
    if not negated:
        while tokens and tokens[-1][0] == _SPACE:  # parser.path trims trailing blanks, parser.negation does not
            tokens.pop()
        if not tokens:
            return None
    anchored = tokens[0][0] == _SEP
    if anchored:
        tokens = tokens[1:]
        if not tokens:  # NewPattern indexes tokens[-1]: a `/` line crashes azd
            raise ValueError("go-gitignore panics on a .funcignore line that is only '/'")
    dir_only = tokens[-1][0] == _SEP
    if dir_only:
        tokens = tokens[:-1]
    return _Pattern(negated, anchored, dir_only, tuple(tokens))


def parse_ignore(data: bytes) -> list[_Pattern]:
    """The patterns of a .funcignore, in file order."""
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    patterns = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if "\r" in line:  # a CR not before LF (even at the end of the file) is a lexer error: line skipped
            continue
        pattern = _compile(line)
        if pattern is not None:
            patterns.append(pattern)
    return patterns


def _fnmatch(pattern: str, name: str, pathname: bool) -> bool:
    """danwakefield/fnmatch Match with flags 0 or FNM_PATHNAME (`*`, `?`, `[]` not crossing `/`)."""
    p = i = 0
    while p < len(pattern):
        c = pattern[p]
        p += 1
        if c == "?":
            if i == len(name) or (pathname and name[i] == "/"):
                return False
            i += 1
        elif c == "*":
            while p < len(pattern) and pattern[p] == "*":
                p += 1
            if p == len(pattern):
                return not pathname or "/" not in name[i:]
            if pathname and pattern[p] == "/":
                slash = name.find("/", i)
                if slash < 0:
                    return False
                i, p = slash + 1, p + 1
                continue
            for j in range(i, len(name)):
                if _fnmatch(pattern[p:], name[j:], pathname):
                    return True
                if pathname and name[j] == "/":
                    break
            return False
        elif c == "[":
            if i == len(name) or (pathname and name[i] == "/"):
                return False
            ok, p = _range_match(pattern, p, name[i])
            if not ok:
                return False
            i += 1
        else:
            if c == "\\" and p < len(pattern):
                c = pattern[p]
                p += 1
            if i == len(name) or name[i] != c:
                return False
            i += 1
    return i == len(name)


def _range_match(pattern: str, p: int, char: str) -> tuple[bool, int]:
    """fnmatch's rangematch: `[...]` from pattern[p] on; a `]` right after `[` closes it (unlike POSIX)."""
    if p == len(pattern):
        return False, p
    negate = pattern[p] in "^!"
    if negate:
        p += 1
    matched = False
    while not matched and _utf8_len(pattern[p:]) > 1 and pattern[p] != "]":
        low = pattern[p]
        p += 1
        if low == "\\":
            if _utf8_len(pattern[p:]) <= 1:
                return False, p
            low, p = pattern[p], p + 1
        if p == len(pattern):  # fnmatch counted bytes, so one multibyte character was left: Go panics
            raise ValueError(f"go-gitignore panics matching the bracket expression in {pattern!r}")
        if pattern[p] == "-" and len(pattern) - p > 1 and pattern[p + 1] != "]":
            high, p = pattern[p + 1], p + 2
            if high == "\\":
                if p == len(pattern):
                    return False, p
                high, p = pattern[p], p + 1
            matched = low <= char <= high
        else:
            matched = low == char
    while p < len(pattern):  # skip to the closing `]`, stepping over escapes
        c = pattern[p]
        p += 1
        if c == "\\" and p < len(pattern):
            p += 1
        elif c == "]":
            return matched != negate, p
    return False, p


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _last_match(patterns: list[_Pattern], base: str, path: str, is_dir: bool) -> _Pattern | None:
    """gitignore.go Absolute then Relative: a plain string prefix test, then the last matching line."""
    if not path.startswith(base):
        return None
    rel = path[len(base) + 1 :]
    return next((p for p in reversed(patterns) if p.matches(rel, is_dir)), None)


def _walk(project_dir: Path) -> list[tuple[str, str]]:
    """(zip entry name, file whose bytes it holds) in the order rzip writes them."""
    root = os.path.abspath(project_dir)
    try:
        patterns: list[_Pattern] | None = parse_ignore(Path(root, IGNORE_FILE).read_bytes())
    except FileNotFoundError:
        patterns = None

    def included(path: str, name: str, is_dir: bool) -> bool:
        if (name == ".azure" and is_dir) or (name in (IGNORE_FILE, "local.settings.json") and not is_dir):
            return False
        if patterns is not None:
            match = _last_match(patterns, root, path, is_dir)
            return match is None or match.negated
        # no .funcignore: Python's own defaults, a virtual environment and bytecode caches
        return not is_dir or not (os.path.exists(os.path.join(path, "pyvenv.cfg")) or name.lower() == "__pycache__")

    entries: list[tuple[str, str]] = []

    def add_file(entry: str, source: str) -> None:
        name = entry.replace("\\", "/")
        if name.endswith("/") and os.path.getsize(source):  # Go's zip writer takes such a name for a folder
            raise OSError(f"zip: write to directory: {name}")
        entries.append((name, source))

    def add_dir(dest: str, src: str, link_depth: int) -> None:
        if link_depth > _MAX_LINK_DEPTH:
            return
        for name in sorted(os.listdir(src)):
            path = os.path.join(src, name)
            is_link = os.path.islink(path)
            if is_link:
                os.stat(path)  # a dangling link fails the whole package, as onZip's os.Stat does
            is_dir = os.path.isdir(path)
            if not included(path, name, is_dir):
                continue
            entry = f"{dest}/{name}" if dest else name
            if is_link:
                target = os.path.realpath(path, strict=True)
                if os.path.isdir(target):
                    add_dir(entry, target, link_depth + 1)
                else:
                    add_file(entry, target)
            elif is_dir:
                add_dir(entry, path, link_depth)
            else:
                add_file(entry, path)

    add_dir("", root, 0)
    return entries


def azd_function_zip_entries(project_dir: Path) -> list[str]:
    """The sorted names of the files azd would zip for a Python function service at project_dir."""
    return sorted(name for name, _ in _walk(project_dir))


def extract(project_dir: Path, dest: Path) -> list[str]:
    """Write the files azd would zip into dest, as unzipping the package would; returns their names."""
    entries = _walk(project_dir)
    for name, source in entries:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return sorted(name for name, _ in entries)
