"""The dev host: stands in for the Functions host, which cannot run here.

It watches the input container (Azurite has no Event Grid), keeps blob receipts in storage so
that a restart neither reprocesses nor misses a blob, and invokes the functions *as indexed from
function_app.py* (a real BlobClient built by the blob extension's own converter, as the Python
worker does; the timer function on a schedule). A failed invocation is delivered again with a
back-off, as Event Grid and the host retry; giving up on a version is the claims' job, not the
host's. It also runs the local pipeline runner's workers.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sheetdrop.claims import version_key
from sheetdrop.storage import blob_service, ensure_container, storage_unreachable
from sheetdrop_local import backend
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

log = logging.getLogger("sheetdrop.host")

#: Where the dev host keeps its receipts, like the Functions host's azure-webjobs-hosts container.
RECEIPTS_CONTAINER = "sheetdrop-hosts"


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
    bindings: tuple[dict[str, Any], ...] = ()


_index_lock = threading.Lock()


def indexed_trigger() -> IndexedTrigger:
    """The blob-triggered function, indexed from ``function_app.py`` once per process
    (``get_functions()`` may be called only once, so concurrent first callers wait)."""
    with _index_lock:
        return _index()[0]


def indexed_timer() -> IndexedTimer | None:
    """The timer-triggered function (the abandoned-claims sweep), if the app has one."""
    with _index_lock:
        return _index()[1]


@functools.cache
def _index() -> tuple[IndexedTrigger, IndexedTimer | None]:
    import function_app

    # The library warns that auth levels do not apply to non-HTTP functions; that is expected here.
    logging.disable(logging.WARNING)
    try:
        functions = function_app.app.get_functions()
    finally:
        logging.disable(logging.NOTSET)
    trigger: IndexedTrigger | None = None
    timer: IndexedTimer | None = None
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
                timer = IndexedTimer(function_name=fn.get_function_name(), arg_name=binding["name"],
                                     schedule=binding["schedule"], user_function=user_fn, bindings=tuple(bindings))
    if trigger is None:
        raise HostError("function_app.py registers no blob-triggered function")
    return trigger, timer


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


@dataclass
class ReceiptStore:
    """One small blob per (container, blob name, etag) the function handled: the dev host's memory
    across restarts. Looked up by the receipt blob's own name, so no blob name has to survive a
    round trip through metadata (which loses leading spaces and non-ASCII)."""

    container: ContainerClient
    prefix: str

    def load(self) -> set[str]:
        start = len(self.prefix) + 1
        return {item.name[start:] for item in self.container.list_blobs(name_starts_with=f"{self.prefix}/")}

    def write(self, blob_name: str, etag: str) -> None:
        body = json.dumps({"blob": blob_name, "etag": etag, "at": time.time()})
        self.container.upload_blob(f"{self.prefix}/{version_key(blob_name, etag)}", body, overwrite=True)


#: Longest wait before a failed invocation is delivered again.
MAX_RETRY_DELAY = 60.0


@dataclass
class DevHost:
    settings: LocalSettings
    poll_interval: float = 1.0
    workers: int = 2
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    #: receipt key -> (failed invocations, monotonic time before which it is not delivered again)
    _retry: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: Times the re-deliveries (monotonic seconds); tests move it instead of sleeping.
    clock: Callable[[], float] = time.monotonic
    _lock_file: Any = None

    def __post_init__(self) -> None:
        self.trigger = indexed_trigger()
        # Like the Functions host, hand the app settings to the function as environment variables:
        # the function (and the blob extension) read them from there, not from this object.
        env = {**os.environ, **self.settings.function_env()}
        self.container_name, _, pattern = resolve_app_settings(self.trigger.path, env).partition("/")
        if pattern != "{name}":
            raise HostError(f"the dev host watches whole containers; trigger path pattern {pattern!r} is not supported")
        os.environ.update(env)
        from sheetdrop.settings import get_settings

        get_settings.cache_clear()
        backend.install(self.settings)
        self.service = blob_service(self.settings.storage)
        self.input = ensure_container(self.service, self.container_name)
        ensure_container(self.service, self.settings.local_output_container)
        receipts = ensure_container(self.service, RECEIPTS_CONTAINER)
        self.receipts = ReceiptStore(receipts, f"receipts/{self.container_name}")
        self.seen = self.receipts.load()

    def scan_once(self) -> int:
        """Invoke the function for every blob version without a receipt that is due; return how many."""
        handled = 0
        now = self.clock()
        for item in self.input.list_blobs():
            key = version_key(item.name, item.etag)
            if key in self.seen or self._retry.get(key, (0, 0.0))[1] > now:
                continue
            handled += 1
            self._deliver(item.name, item.etag)
        return handled

    def _deliver(self, name: str, etag: str) -> None:
        key = version_key(name, etag)
        try:
            invoke(self.trigger, self.container_name, name, str(uuid.uuid4()))
        except Exception as exc:
            failures = self._retry.get(key, (0, 0.0))[0] + 1
            # Storage down is nobody's fault: try again on the next scan.
            delay = self.poll_interval if storage_unreachable(exc) else min(MAX_RETRY_DELAY, 2.0 ** failures)
            self._retry[key] = (failures, self.clock() + delay)
            # Not receipted: delivered again later. The claim counts the failures that are the
            # blob's, and poisons the version when the host's threshold is reached.
            log.warning("invocation for %s failed (%s: %s); delivering it again in %.0f s", name,
                        exc.__class__.__name__, exc, delay)
            return
        self._retry.pop(key, None)
        self.receipts.write(name, etag)
        self.seen.add(key)

    def run_timer(self) -> None:
        """Invoke the app's timer function (the abandoned-claims sweep), as the host would on its
        schedule; the dev host calls it more often than its cron schedule, see ``_watch``."""
        from azure.functions.timer import TimerRequest

        timer = indexed_timer()
        if timer is not None:
            timer.user_function(**{timer.arg_name: TimerRequest(past_due=False)})

    def _watch(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                self.scan_once()
                # Sooner than the timer's 5-minute schedule when the stale bound is short (tests, demos).
                if time.monotonic() - last_sweep > min(300.0, self.settings.claim_stale_seconds / 2):
                    last_sweep = time.monotonic()
                    self.run_timer()
            except Exception as exc:  # storage down for a moment: keep watching
                log.warning("scanning %s failed, retrying: %s", self.container_name, exc)
            self._stop.wait(self.poll_interval)

    def _work(self) -> None:
        from sheetdrop_local.runner import LocalRunner

        runner = LocalRunner.from_settings(self.settings)
        while not self._stop.is_set():
            try:
                if runner.run_next() is None:
                    self._stop.wait(0.25)
            except Exception as exc:
                log.exception("runner worker error: %s", exc)
                self._stop.wait(1.0)

    def _take_state_lock(self) -> None:
        """One dev host per state folder: a second one would queue the first one's running runs
        again (and so run them twice)."""
        import fcntl

        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.settings.state_dir / "host.lock", "a+")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise HostError(f"another dev host (pid {holder}) is using the state folder {self.settings.state_dir}; "
                            "stop it first, or set SHEETDROP_STATE_DIR to another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def start(self) -> DevHost:
        self._take_state_lock()
        if self.settings.backend == "local":
            from sheetdrop_local import db, runstore

            requeued = runstore.requeue_interrupted(db.connect(self.settings.state_dir))
            if requeued:
                log.info("queued %d run(s) again that a previous host left unfinished", requeued)
            for i in range(self.workers):
                self._spawn(self._work, f"runner-{i}")
        self._spawn(self._watch, "watcher")
        log.info("watching container %r (function %s)", self.container_name, self.trigger.function_name)
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    @contextlib.contextmanager
    def running(self) -> Iterator[DevHost]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
