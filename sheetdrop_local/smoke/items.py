"""The items both backends decide the same way, from the step's own log and the times of a run (docs/azureml.md and
docs/azureml-v2.md, "What only a real workspace confirms"). Each says confirmed or not with the values it saw."""

from __future__ import annotations

import json
from typing import Any

from sheetdrop_contract import contract
from sheetdrop_local.smoke.facts import (
    ARGUMENTS_LINE,
    COMMON_RUNTIME_MOUNT,
    INPUT_LINE,
    OUTPUT_LINE,
    REFUSED,
    SETTINGS_LINE,
    Item,
    Observed,
    duration,
)


def mount_layout(seen: Observed) -> Item:
    """The arguments reached the step as given (a blob name with ``'``, ``$`` and spaces), its settings were read
    (every step setting, each valid: a bad one fails the step), and the output was mounted in the common runtime's
    layout."""
    problems: list[str] = []
    arguments_text, settings_text, output = (seen.line(p) for p in (ARGUMENTS_LINE, SETTINGS_LINE, OUTPUT_LINE))
    arguments: dict[str, Any] = {}
    try:
        arguments = json.loads(arguments_text) if arguments_text else {}
    except ValueError:
        problems.append("its arguments: line is not JSON")
    source = contract.parse_source_version(str(arguments.get(contract.SOURCE_PARAMETER) or "")) if arguments else {}
    if not arguments_text:
        problems.append("no arguments: line in the step log")
    elif source.get("source_blob") != seen.blob or source.get("source_etag") != seen.etag:
        problems.append(f"the step read source_version {arguments.get(contract.SOURCE_PARAMETER)!r}, not the "
                        f"blob {seen.blob!r} at {seen.etag}")
    settings: dict[str, Any] = {}
    try:
        settings = json.loads(settings_text) if settings_text else {}
    except ValueError:
        problems.append("its settings: line is not JSON")
    if not settings_text:
        problems.append("no settings: line in the step log")
    missing = [setting.name for setting in contract.STEP_SETTINGS if setting.name not in settings]
    if settings_text and missing:
        problems.append(f"the settings: line lacks {', '.join(missing)}")
    mount = (output or "").split(" is ", 1)[0]
    if not output:
        problems.append("no output: line in the step log")
    elif not COMMON_RUNTIME_MOUNT.search(mount):
        problems.append(f"the output is mounted at {mount}, not under …/cap/data-capability/wd/extracted")
    evidence = (f"blob {seen.blob!r} arrived as {source.get('source_blob')!r}; settings {settings_text}; "
                f"output mounted at {mount or '?'}")
    return Item("mount-layout", not problems, "; ".join(problems) or evidence)


def job_identity(seen: Observed) -> Item:
    """The step read its blob and registered, as the identity the job gives it: no refusal in its log."""
    read = seen.line(INPUT_LINE)
    refused = REFUSED.search(seen.log)
    if read and seen.datasets and not refused:
        return Item("job-identity", True, f"the step read {read}; it registered "
                    f"{', '.join(d.ref for d in seen.datasets)}")
    why = []
    if not read:
        why.append("the step log has no 'input: read' line")
    if refused:
        line = next(line for line in seen.log.splitlines() if REFUSED.search(line))
        why.append(f"the step log says {line.strip()[:300]!r}")
    if not seen.datasets:
        why.append("no dataset was registered")
    return Item("job-identity", False, "; ".join(why))


def stages(seen: Observed) -> list[tuple[str, float | None, str]]:
    """Each stage from the drop to the datasets: (name, seconds, what happens there)."""
    registered = max((d.created for d in seen.datasets if d.created is not None), default=None)

    def span(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else end - start

    return [
        ("upload → claimed by the Function", span(seen.uploaded, seen.claimed), "Event Grid's delivery, the "
         "Function's start"),
        ("claimed → run created", span(seen.claimed, seen.created), "the Function's submission, the service "
         "accepting it"),
        ("run created → step started", span(seen.created, seen.step_started), "queue, the cluster starting "
         "from 0 nodes, image, snapshot"),
        ("step started → step ended", span(seen.step_started, seen.step_ended), "the step: read, convert, "
         "register"),
        ("step ended → run ended", span(seen.step_ended, seen.ended), "the run finishing"),
        ("upload → datasets registered", span(seen.uploaded, registered), "drop → dataset"),
    ]


def per_run_overhead(seen: Observed) -> Item:
    """The time from the drop to the datasets that is not the step's own conversion."""
    found = stages(seen)
    total = found[-1][1]
    own = seen.step_seconds()
    missing = [name for name, seconds, _ in found if seconds is None]
    if total is None or own is None or missing:
        return Item("per-run-overhead", False, f"not measured: no time for {', '.join(missing) or 'the step'}"
                    + ("" if own is not None else " (no 'converted: … in N s' line in the step log)"))
    outside = (seen.ended or 0) - (seen.created or 0) - ((seen.step_ended or 0) - (seen.step_started or 0))
    return Item("per-run-overhead", True, f"drop → dataset {duration(total)}, of which the step's conversion "
                f"{duration(own)}: overhead {duration(total - own)}; the run's time outside the step "
                f"{duration(outside)}; " + "; ".join(f"{name} {duration(seconds)}" for name, seconds, _ in found[:-1]))


def workbook_finds_run(seen: Observed, rows: list[dict[str, Any]], waited: float) -> Item:
    """The workbook's `runs` query returns this run with its final status."""
    mine = [row for row in rows if row.get("run_id") == seen.run_id]
    if mine and mine[0].get("status") == seen.status:
        return Item("workbook-finds-run", True, f"the workbook's runs query returns {seen.run_id} with status "
                    f"{mine[0].get('status')} (status_time {mine[0].get('status_time')}, blob {mine[0].get('blob')})")
    if mine:
        return Item("workbook-finds-run", False, f"the workbook's runs query returns {seen.run_id} with status "
                    f"{mine[0].get('status') or '(none)'!r}, not {seen.status!r}, after {duration(waited)}")
    return Item("workbook-finds-run", False, f"the workbook's runs query has no row for {seen.run_id} after "
                f"{duration(waited)} ({len(rows)} rows for other runs)")
