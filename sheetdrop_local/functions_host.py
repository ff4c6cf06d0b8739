"""The Functions host's part that the dev host plays: indexing function_app.py as the Python worker
does, and invoking its functions with real binding objects (a BlobClient built by the blob
extension's own converter from model binding data; a TimerRequest; a Context)."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any


class HostError(RuntimeError):
    pass


@dataclass(frozen=True)
class IndexedTrigger:
    """The blob-triggered function as the host would index it."""

    function_name: str
    arg_name: str
    path: str
    connection: str
    source: str | None
    user_function: Callable[..., Any]
    parameters: dict[str, inspect.Parameter]
    bindings: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class IndexedTimer:
    function_name: str
    arg_name: str
    schedule: str
    user_function: Callable[..., Any]
    parameters: dict[str, inspect.Parameter]
    bindings: tuple[dict[str, Any], ...] = ()


_index_lock = threading.Lock()


def indexed_trigger() -> IndexedTrigger:
    """The blob-triggered function, indexed from ``function_app.py`` once per process
    (``get_functions()`` may be called only once, so concurrent first callers wait)."""
    with _index_lock:
        return _index()[0]


def indexed_timer(name: str = "abandoned_claims") -> IndexedTimer | None:
    """A timer-triggered function of the app by name (by default the sweep), if the app has it."""
    with _index_lock:
        return _index()[1].get(name)


def indexed_timers() -> dict[str, IndexedTimer]:
    """Every timer-triggered function of the app, by name."""
    with _index_lock:
        return dict(_index()[1])


@functools.cache
def _index() -> tuple[IndexedTrigger, dict[str, IndexedTimer]]:
    import function_app

    # The library warns that auth levels do not apply to non-HTTP functions; that is expected here.
    logging.disable(logging.WARNING)
    try:
        functions = function_app.app.get_functions()
    finally:
        logging.disable(logging.NOTSET)
    trigger: IndexedTrigger | None = None
    timers: dict[str, IndexedTimer] = {}
    for fn in functions:
        bindings = json.loads(fn.get_function_json())["bindings"]
        user_fn = fn.get_user_function()
        for binding in bindings:
            if binding["type"] == "blobTrigger":
                trigger = IndexedTrigger(
                    function_name=fn.get_function_name(), arg_name=binding["name"], path=binding["path"],
                    connection=binding["connection"], source=binding.get("source"), user_function=user_fn,
                    parameters=dict(inspect.signature(user_fn).parameters), bindings=tuple(bindings),
                )
            elif binding["type"] == "timerTrigger":
                timers[fn.get_function_name()] = IndexedTimer(
                    function_name=fn.get_function_name(), arg_name=binding["name"], schedule=binding["schedule"],
                    user_function=user_fn, parameters=dict(inspect.signature(user_fn).parameters),
                    bindings=tuple(bindings))
    if trigger is None:
        raise HostError("function_app.py registers no blob-triggered function")
    return trigger, timers


def resolve_app_settings(value: str, env: dict[str, str]) -> str:
    """Replace ``%SETTING%`` as the Functions host does; a missing setting is an error there too."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise HostError(f"the trigger path names %{name}% but app setting {name} is not set")
        return env[name]

    return re.sub(r"%([^%]+)%", setting, value)


class DevContext:
    """What ``func.Context`` gives a function: the fields the worker fills in."""

    def __init__(self, function_name: str, invocation_id: str) -> None:
        self.invocation_id = invocation_id
        self.function_name = function_name
        self.function_directory = os.getcwd()
        self.trace_context = SimpleNamespace(trace_parent="", trace_state="", attributes={})
        self.retry_context = SimpleNamespace(retry_count=0, max_retry_count=0, exception=None)
        self.thread_local_storage = threading.local()


def blob_client_argument(trigger: IndexedTrigger, container: str, name: str) -> Any:
    """Build the trigger argument with the extension's converter from model binding data, as the
    worker does for an SDK-type binding (the connection is resolved from app settings there)."""
    from azurefunctions.extensions.base import Datum
    from azurefunctions.extensions.bindings.blob import BlobClientConverter

    pytype = trigger.parameters[trigger.arg_name].annotation
    if not (isinstance(pytype, type) and BlobClientConverter.check_input_type_annotation(pytype)):
        raise HostError(f"parameter {trigger.arg_name!r} is not annotated with an SDK blob type")
    model_binding_data = SimpleNamespace(
        version="1.0", source="AzureStorageBlobs", content_type="application/json",
        content=json.dumps({"Connection": trigger.connection, "ContainerName": container, "BlobName": name}),
    )
    return BlobClientConverter.decode(
        Datum(model_binding_data, "model_binding_data"), trigger_metadata={"name": name}, pytype=pytype)


def invoke(trigger: IndexedTrigger, container: str, name: str, invocation_id: str) -> None:
    kwargs: dict[str, Any] = {trigger.arg_name: blob_client_argument(trigger, container, name)}
    for pname, param in trigger.parameters.items():
        if pname != trigger.arg_name and (pname == "context" or getattr(param.annotation, "__name__", "") == "Context"):
            kwargs[pname] = DevContext(trigger.function_name, invocation_id)
    trigger.user_function(**kwargs)


def invoke_timer(timer: IndexedTimer, invocation_id: str) -> None:
    from azure.functions.timer import TimerRequest

    kwargs: dict[str, Any] = {timer.arg_name: TimerRequest(past_due=False)}
    if "context" in timer.parameters:
        kwargs["context"] = DevContext(timer.function_name, invocation_id)
    timer.user_function(**kwargs)
