"""The dev host: stands in for the Functions host, which cannot run here.

It learns of new blobs from the local Event Grid queue (:mod:`sheetdrop_local.events`) within a
poll, and from a reconciliation listing of the input container whose interval grows with what a
listing costs, so that an idle host costs about the same with 20 blobs or 5,000. It keeps blob
receipts in storage so that a restart neither reprocesses nor misses a blob, and invokes the
functions as indexed from function_app.py (:mod:`sheetdrop_local.functions_host`). A failed
invocation is delivered again with a back-off, as Event Grid and the host retry; giving up on a
version is the claims' job, not the host's. Before it starts work it finishes what a crash left
(:mod:`sheetdrop_local.recovery`); it also runs the local pipeline runner's workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sheetdrop.claims import version_key
from sheetdrop.reconcile import watching_since
from sheetdrop.storage import blob_service, ensure_container, storage_unreachable
from sheetdrop.trigger import claim_store
from sheetdrop_local import backend, db, events, recovery, runstore
from sheetdrop_local.functions_host import (
    HostError,
    indexed_timer,
    indexed_trigger,
    invoke,
    invoke_timer,
    resolve_app_settings,
)
from sheetdrop_local.hostlock import HostLock
from sheetdrop_local.settings import LocalSettings

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

log = logging.getLogger("sheetdrop.host")

#: Where the dev host keeps its receipts, like the Functions host's azure-webjobs-hosts container.
RECEIPTS_CONTAINER = "sheetdrop-hosts"


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


#: What a storage that lost its state answers (Azurite SIGKILLed before its first save).
LOST = ("ContainerNotFound", "QueueNotFound")


def _missing(exc: BaseException, *codes: str) -> bool:
    """Whether storage answered 404 with one of these error codes."""
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError) and getattr(exc, "error_code", None) in codes


#: Longest wait before a failed invocation is delivered again.
MAX_RETRY_DELAY = 60.0
#: A reconciliation listing runs at most this often relative to its own duration (≤ 5 % of the time).
SCAN_COST_FACTOR = 20
MAX_SCAN_INTERVAL = 300.0


@dataclass
class DevHost:
    settings: LocalSettings
    poll_interval: float = 1.0
    workers: int = 2
    #: Times the re-deliveries and listings (monotonic seconds); tests move it instead of sleeping.
    clock: Callable[[], float] = time.monotonic
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    #: receipt key -> (failed invocations, monotonic time before which it is not delivered again)
    _retry: dict[str, tuple[int, float]] = field(default_factory=dict)
    _next_scan: float = 0.0
    _outage_since: float | None = None
    #: The state folder's lock (hostlock.py): taken by start() unless the caller holds it already
    #: (`sheetdrop host` takes it before it starts Azurite), and then released by that caller.
    lock: HostLock | None = None
    _own_lock: bool = False
    restarts: recovery.StorageRestarts = field(default_factory=recovery.StorageRestarts)

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
        # This host's invocation ids say which state folder and which host made them (recovery.py).
        self.invocation_prefix = recovery.invocation_prefix(self.settings.state_dir)
        self.instance = uuid.uuid4().hex[:8]
        self.service = blob_service(self.settings.storage)
        self.input = ensure_container(self.service, self.container_name)
        ensure_container(self.service, self.settings.local_output_container)
        receipts = ensure_container(self.service, RECEIPTS_CONTAINER)
        self.receipts = ReceiptStore(receipts, f"receipts/{self.container_name}")
        self.seen = self.receipts.load()
        self.events = events.events_queue(self.settings.storage)
        # What Event Grid would announce: blobs written since the app first watched this container. What was
        # there before is `sheetdrop backfill`'s to convert, as in Azure (the Function's sweep shares the mark).
        claims = claim_store(get_settings())
        self.since = watching_since(claims, self.container_name, claims.clock)

    def invocation_id(self) -> str:
        return f"{self.invocation_prefix}{self.instance}-{uuid.uuid4().hex[:12]}"

    def scan_once(self) -> int:
        """Reconciliation: invoke the function for every blob version without a receipt that is due;
        return how many. The next listing is timed by what this listing cost, not by the deliveries
        it made (a burst delivered must not leave other tools' uploads unnoticed for minutes)."""
        started = self.clock()
        due = [(item.name, item.etag) for item in self.input.list_blobs()
               if version_key(item.name, item.etag) not in self.seen
               and self._retry.get(version_key(item.name, item.etag), (0, 0.0))[1] <= started
               # Only what was written since the app first watched (Last-Modified has whole seconds).
               and item.last_modified.timestamp() >= math.floor(self.since)]
        took = self.clock() - started
        self._next_scan = self.clock() + min(MAX_SCAN_INTERVAL, max(self.poll_interval, SCAN_COST_FACTOR * took))
        for name, etag in due:
            self._deliver(name, etag)
        return len(due)

    def poll_events(self) -> int:
        """Deliver the BlobCreated events waiting in the local Event Grid queue; return how many."""
        handled = 0
        for event in events.receive(self.events):
            key = version_key(event.name, event.etag)
            if event.container == self.container_name and key not in self.seen:
                handled += 1
                delay = self._deliver(event.name, event.etag)
                if delay is not None:  # comes back when the back-off is over
                    self.events.update_message(event.message_id, event.pop_receipt, visibility_timeout=int(delay))
                    continue
            self.events.delete_message(event.message_id, event.pop_receipt)
        return handled

    def _deliver(self, name: str, etag: str) -> float | None:
        """Invoke the function for one blob version; on failure, the seconds until it is due again."""
        key = version_key(name, etag)
        try:
            invoke(self.trigger, self.container_name, name, self.invocation_id())
        except Exception as exc:
            if _missing(exc, "BlobNotFound"):
                # Deleted before it was delivered: nothing will ever be there to convert, so its
                # delivery ends here instead of coming back every minute (a new upload is a new etag).
                log.info("%s/%s (etag %s) no longer exists; nothing to deliver", self.container_name, name, etag)
                self._done(key, name, etag)
                return None
            if _missing(exc, *LOST):
                self.recreate(exc)
            failures = self._retry.get(key, (0, 0.0))[0] + 1
            # Storage down is nobody's fault: try again on the next poll.
            delay = self.poll_interval if storage_unreachable(exc) else min(MAX_RETRY_DELAY, 2.0 ** failures)
            self._retry[key] = (failures, self.clock() + delay)
            # Not receipted: delivered again later. The claim counts the failures that are the
            # blob's, and poisons the version when the host's threshold is reached.
            log.warning("invocation for %s failed (%s: %s); delivering it again in %.0f s", name,
                        exc.__class__.__name__, exc, delay)
            return delay
        self._done(key, name, etag)
        return None

    def _done(self, key: str, name: str, etag: str) -> None:
        self._retry.pop(key, None)
        self.receipts.write(name, etag)
        self.seen.add(key)

    def recreate(self, exc: Exception) -> None:
        """Storage lost containers or the event queue (an Azurite killed before it first saved them):
        create them all again, and say so once."""
        from azure.core.exceptions import ResourceExistsError

        for container in (self.container_name, self.settings.local_output_container, RECEIPTS_CONTAINER,
                          self.settings.claims_container):
            ensure_container(self.service, container)
        with contextlib.suppress(ResourceExistsError):
            self.events.create_queue()
        log.warning("storage had lost its containers or its event queue (%s; did Azurite restart without its "
                    "data?): created them again", getattr(exc, "error_code", None) or exc.__class__.__name__)

    def run_timer(self, name: str = "abandoned_claims") -> None:
        """Invoke one of the app's timer functions (by default the sweep), as the host would on its schedule; the
        dev host calls the sweep more often than its cron schedule, and the batch flush at every poll (``_watch``)."""
        timer = indexed_timer(name)
        if timer is not None:
            invoke_timer(timer, self.invocation_id())

    def _watch(self) -> None:
        last_sweep = self.clock()
        while not self._stop.is_set():
            try:
                self.poll_events()
                if self.clock() >= self._next_scan:
                    self.scan_once()
                # Sooner than the timer's 5-minute schedule when the stale bound is short (tests, demos).
                if self.clock() - last_sweep > min(300.0, self.settings.claim_stale_seconds / 2):
                    last_sweep = self.clock()
                    self.run_timer()
                self.run_timer("batch_flush")  # every 30 s in Azure; a poll here costs one listing
                self._storage_answered()
            except Exception as exc:  # storage down for a moment: keep watching
                if _missing(exc, *LOST):
                    self._recreate_quietly(exc)
                else:
                    self._storage_failed(exc)
            self._stop.wait(self.poll_interval)

    def _recreate_quietly(self, exc: Exception) -> None:
        try:
            self.recreate(exc)
        except Exception as again:
            self._storage_failed(again)

    def _storage_failed(self, exc: Exception) -> None:
        if not storage_unreachable(exc):
            log.warning("watching %s failed, retrying: %s", self.container_name, exc)
        elif self._outage_since is None:
            self._outage_since = self.clock()
            log.warning("storage is unreachable (%s: %s); retrying every %.0f s", self.settings.storage.describe(),
                        exc.__class__.__name__, self.poll_interval)

    def _storage_answered(self) -> None:
        if self._outage_since is not None:
            log.warning("storage is reachable again after %.0f s", self.clock() - self._outage_since)
            self._outage_since = None

    def _work(self) -> None:
        from sheetdrop_local.runner import LocalRunner

        runner = LocalRunner.from_settings(self.settings)
        runner.restarts = self.restarts
        while not self._stop.is_set():
            try:
                if runner.run_next() is None:
                    self._stop.wait(0.25)
            except Exception as exc:
                log.exception("runner worker error: %s", exc)
                self._stop.wait(1.0)

    def recover(self, storage_lost_since: float | None) -> None:
        """At start, finish what a dead predecessor left (recovery.py). ``storage_lost_since``: wall
        time after which storage may have lost acknowledged writes (the predecessor did not stop
        cleanly); completed runs since then are checked."""
        conn = db.connect(self.settings.state_dir)
        recovery.release_predecessors_claims(claim_store(self.settings), self.invocation_prefix, self.instance)
        if self.settings.backend != "local":
            return
        requeued = runstore.requeue_interrupted(conn)
        if requeued:
            log.info("queued %d run(s) again that a previous host left unfinished", requeued)
        if storage_lost_since is not None:
            self.storage_restarted(storage_lost_since)

    def storage_restarted(self, lost_since: float) -> None:
        """Storage (Azurite) restarted and may have lost what it acknowledged after ``lost_since``:
        check the runs completed since then, under the lock their registrations commit under."""
        with self.restarts.lock:
            self.restarts.count += 1
            affected = recovery.verify_outputs(
                db.connect(self.settings.state_dir), self.service, self.settings.local_output_container,
                {self.settings.input_datastore: self.settings.input_container}, lost_since)
        log.info("checked the outputs of the runs completed since %s: %d had lost files",
                 time.strftime("%H:%M:%S", time.localtime(lost_since)), len(affected))

    def start(self) -> DevHost:
        if self.lock is None:
            # One dev host per state folder: a second one would queue the first one's running runs
            # again (and so run them twice).
            self.lock, self._own_lock = HostLock.take(self.settings.state_dir), True
        conn = db.connect(self.settings.state_dir)
        previous_start = db.get_state(conn, "host_started_at")
        clean = db.get_state(conn, "host_stopped_cleanly") == "1"
        db.set_state(conn, "host_started_at", f"{time.time():.3f}")
        db.set_state(conn, "host_stopped_cleanly", "0")
        self.recover(None if clean or previous_start is None else float(previous_start))
        if self.settings.backend == "local":
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
        if self.lock is not None and self.lock.handle is not None:
            if not any(thread.is_alive() for thread in self._threads):
                db.set_state(db.connect(self.settings.state_dir), "host_stopped_cleanly", "1")
            if self._own_lock:
                self.lock.release()

    @contextlib.contextmanager
    def running(self) -> Iterator[DevHost]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
