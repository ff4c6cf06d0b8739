"""``python -m sheetdrop_step INPUT OUTDIR [--options FILE]``: the converter without storage or a run, as
``sheetdrop convert`` starts it. Exits 0, or 2 with one line ``error: <code>: <reason>``; dies with the
process that started it (and its reader with it), and by its reader's signal when that reader was
killed from outside (:class:`ReaderKilled`)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

from sheetdrop_contract.contract import StepSettingError
from sheetdrop_contract.read_options import OPTIONS_FILE, OptionsError, parse
from sheetdrop_step.converter._entry import convert_workbook, options_from_env
from sheetdrop_step.converter._rejection import ReaderKilled, WorkbookRejected

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when the process that started it dies (Linux), so that a
    caller killed by anything (its own timeout, SIGKILL) leaves no converter running; the reader
    follows through its channel (``_reading.launch``)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request was in place
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    import argparse

    die_with_parent()
    parser = argparse.ArgumentParser(description="Convert a workbook to one parquet file per sheet.")
    parser.add_argument("input", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--source", help="source name recorded in the parquet metadata (default: file name)")
    parser.add_argument("--include-hidden", action="store_true", help="also convert hidden sheets")
    parser.add_argument("--options", type=Path, metavar="FILE",
                        help=f"read options, as a folder's {OPTIONS_FILE} gives them (README, 'Read options')")
    parser.add_argument("--json", action="store_true", help="print the outputs as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        options = options_from_env()
    except StepSettingError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 2
    options["include_hidden"] = options["include_hidden"] or args.include_hidden
    try:
        if args.options is not None:
            # Read as the Function reads the folder's file: bytes that are not UTF-8 make the JSON invalid.
            text = args.options.read_bytes().decode("utf-8", errors="replace")
            options["options"] = parse(text, str(args.options))
    except (OSError, OptionsError) as exc:
        print(f"error: options: {exc}", file=sys.stderr)
        return 2
    try:
        outputs = convert_workbook(args.input, args.outdir, source=args.source, **options)
    except WorkbookRejected as exc:
        print(f"error: {exc.code}: {' '.join(exc.reason.split())}", file=sys.stderr)
        return 2
    except ReaderKilled as exc:
        print(f"warning: {exc}", file=sys.stderr)
        exc.end_like_the_reader()
        return 4
    if args.json:
        print(json.dumps([{**o.__dict__, "path": str(o.path)} for o in outputs], indent=2))
    else:
        for out in outputs:
            print(f"{out.path}\t{out.rows} rows\t{out.columns} columns")
    return 0
