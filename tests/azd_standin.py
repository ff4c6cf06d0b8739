"""A stand-in for `azd env get-value` / `azd env set`, on the PATH of the azd hooks under test.

Copied into a temporary bin/ as the executable `azd`. The environment's values live in azd-env.json,
the same values tests/test_azd_hooks.py hands the hooks as environment variables, as azd does (Azure/
azure-dev, pkg/ext/hooks_runner.go: the hook's environment is the azd environment's dotenv). The forms
are those of azd 1.23.15 `cmd/env.go`: `env set <key> <value>` or `env set <key>=<value> ...`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    state = Path(os.environ["STUB_DIR"])
    argv = sys.argv[1:]
    with (state / "calls.jsonl").open("a") as f:
        f.write(json.dumps({"tool": "azd", "argv": argv}) + "\n")
    path = state / "azd-env.json"
    values = json.loads(path.read_text())
    if argv[:2] == ["env", "get-value"] and len(argv) == 3:
        if argv[2] not in values:
            print(f"ERROR: key '{argv[2]}' not found in the environment values", file=sys.stderr)
            return 1
        print(values[argv[2]])
        return 0
    if argv[:2] == ["env", "set"] and len(argv) > 2:
        pairs = [argv[2:]] if len(argv) == 4 and "=" not in argv[2] else [a.split("=", 1) for a in argv[2:]]
        if any(len(pair) != 2 for pair in pairs):
            print(f"ERROR: invalid key=value format: {argv[2:]}", file=sys.stderr)
            return 1
        values.update(dict(pairs))
        path.write_text(json.dumps(values, indent=1))
        return 0
    print(f"ERROR: the azd stand-in has no answer for: azd {' '.join(argv)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
