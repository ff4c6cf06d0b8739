"""One structured log record per delivery: what the portal's workbook (infra/app/workbook.json) reads.

How it reaches Application Insights: the Functions Python worker forwards a log record to the host as
its formatted message, level, category and invocation id only; attributes set with ``extra=`` are not
sent (azure-functions-python-worker, ``azure_functions_worker/dispatcher.py``, ``Dispatcher.on_logging``,
commit 7e6acf3). The host writes that message to the ``traces`` table (``AppTraces.Message`` in the
Log Analytics workspace). So the record travels in the message itself: :data:`PREFIX`, then one JSON
object with the :data:`FIELDS`, which the workbook's queries take apart with ``parse_json``. The same
fields are also attached with ``extra=``, so a logging handler that exports record attributes (the
OpenTelemetry one, where an app turns it on) shows them as custom dimensions without a second format.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

#: Starts the message of every outcome record; nothing else the Function logs starts with it.
PREFIX = "sheetdrop.outcome "
#: The record's keys, in this order; the workbook's queries may use these and nothing else.
FIELDS = ("outcome", "container", "blob", "etag", "run_id", "run_url", "reason", "duration_ms", "invocation_id")
#: Every value ``outcome`` takes: the trigger's actions, and ``failed`` (the delivery raised; the host retries).
OUTCOMES = ("skipped", "duplicate", "submitted", "recovered", "poisoned", "pending", "options_invalid", "failed")
_LEVELS = {"failed": logging.WARNING, "poisoned": logging.ERROR, "options_invalid": logging.WARNING}


def record(outcome: str, *, container: str, blob: str, etag: str, started: float, run_id: str | None = None,
           run_url: str | None = None, reason: str | None = None, invocation_id: str | None = None) -> dict[str, Any]:
    """The record of one delivery; ``started`` is its :func:`time.monotonic` at the start."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    values = {"outcome": outcome, "container": container, "blob": blob, "etag": etag, "run_id": run_id,
              "run_url": run_url, "reason": reason, "duration_ms": round((time.monotonic() - started) * 1000),
              "invocation_id": invocation_id}
    return {name: values[name] for name in FIELDS}


def message(values: dict[str, Any]) -> str:
    return PREFIX + json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def parse(text: str) -> dict[str, Any] | None:
    """The record in a log message, or None if the message is not one."""
    return json.loads(text[len(PREFIX):]) if text.startswith(PREFIX) else None


def log_outcome(logger: logging.Logger, outcome: str, **fields: Any) -> dict[str, Any]:
    values = record(outcome, **fields)
    # %s keeps the record intact whatever it contains (a blob name with a %).
    logger.log(_LEVELS.get(outcome, logging.INFO), "%s", message(values),
               extra={f"sheetdrop_{name}": value for name, value in values.items() if value is not None})
    return values
