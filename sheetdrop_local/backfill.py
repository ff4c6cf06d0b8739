"""``sheetdrop backfill``: convert the workbooks already in the input container, exactly once per version.

Event Grid only announces new blobs, so what was there before the app started watching (or whose event was
lost before the reconciliation's window) is converted on purpose: the backlog (:mod:`sheetdrop.backlog`) is
every qualifying version without a claim, and each one goes through the trigger's own logic (claim, name,
submit), as an event's delivery would. So a backfill racing live drops, the reconciliation or another backfill
makes no second run; a backfill killed midway is resumed by running it again (its claims say what is done, and
a claim its dead process left is given back first); Ctrl-C stops it between submissions.

Runs are submitted no faster than ``--max-in-flight`` of them are unfinished at once, as the backend reports
them (its ``ended(run_ids)``), so a large backfill neither floods the cluster's queue nor outruns the workspace's
core quota.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from sheetdrop import batching
from sheetdrop.backlog import Found, Listing, unclaimed
from sheetdrop.claims import ClaimState, ClaimStore
from sheetdrop.trigger import handle_blob, held_request

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from sheetdrop.settings import Settings
    from sheetdrop.submit import Backend
    from sheetdrop_local.settings import LocalSettings

log = logging.getLogger("sheetdrop.backfill")

#: A backfill's invocations are named after the machine and process that made them, so that a later backfill
#: on the same machine can tell a claim whose process is gone from one being submitted right now.
INVOCATION_PREFIX = "backfill"


def invocation_id(pid: int | None = None) -> str:
    return f"{INVOCATION_PREFIX}-{socket.gethostname()}-{pid or os.getpid()}-{uuid.uuid4().hex[:8]}"


def _left_by_a_dead_backfill(invocation: str | None) -> int | None:
    """The pid of a backfill process on this machine that held the claim and is gone, else None."""
    prefix = f"{INVOCATION_PREFIX}-{socket.gethostname()}-"
    if not invocation or not invocation.startswith(prefix):
        return None
    try:
        pid = int(invocation[len(prefix):].split("-", 1)[0])
    except ValueError:
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except PermissionError:  # alive, someone else's
        return None
    return None


@dataclass
class Plan:
    found: list[Found]
    listing: Listing

    @property
    def bytes(self) -> int:
        return sum(f.version.size or 0 for f in self.found if f.claim is None)


def plan(container: ContainerClient, claims: ClaimStore, *, prefix: str = "", since: float | None = None) -> Plan:
    listing = Listing()
    found = list(unclaimed(container, claims, prefix=prefix, since=since, listing=listing, unfinished=True))
    return Plan(found, listing)


@dataclass
class Progress:
    total: int
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        parts = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))
        left = f", about {_duration((self.total - self.done) / rate)} left" if rate > 0 and self.done < self.total \
            else ""
        return f"backfill: {self.done} of {self.total} delivered ({parts or 'none yet'}), {rate:.1f} a second{left}"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def run(plan: Plan, settings: Settings, claims: ClaimStore, backend: Backend, *, max_in_flight: int,
        out: TextIO, ended: Callable[[list[str]], set[str]] | None = None, every: float = 2.0, poll: float = 1.0,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Progress:
    """Deliver every planned version; ``ended`` says which of this backfill's open runs have ended (None: no cap)."""
    progress = Progress(len(plan.found), clock)
    shown = clock()
    open_runs: list[str] = []
    for found in plan.found:
        while ended is not None and max_in_flight > 0 and len(open_runs) >= max_in_flight:
            done = ended(open_runs)
            open_runs = [run_id for run_id in open_runs if run_id not in done]
            if len(open_runs) >= max_in_flight:
                sleep(poll)
        what = _deliver(found, settings, claims, backend)
        progress.count(what.action)
        if what.run_id:
            progress.run_ids.append(what.run_id)
            open_runs.append(what.run_id)
        if clock() - shown >= every:
            print(progress.line(), file=out, flush=True)
            shown = clock()
    if batching.can_batch(backend, settings):
        # The last batch is not full: it goes now rather than after BATCH_WAIT_SECONDS.
        made = batching.flush(settings, claims, backend, functools.partial(held_request, settings=settings),
                              invocation_id=invocation_id(), only_when_due=False)
        progress.run_ids += list(made)
        # Held for a batch, every one of them is in a batch run by now (a batch refused goes back to the sweep).
        if progress.counts.get("pending"):
            progress.counts["batched"] = progress.counts.pop("pending")
    print(progress.line(), file=out, flush=True)
    return progress


@dataclass(frozen=True)
class Delivered:
    action: str
    run_id: str | None = None


def _deliver(found: Found, settings: Settings, claims: ClaimStore, backend: Backend) -> Delivered:
    version = found.version
    for _ in range(2):
        try:
            # A backfill is a burst by definition: with a backend that takes batches, versions go in batch jobs.
            outcome = handle_blob(version, invocation_id=invocation_id(), settings=settings, backend=backend,
                                  claims=claims, batch=True)
        except Exception as exc:  # its claim is released: a later backfill or the timer's sweep tries again
            log.warning("%s/%s: %s: %s", version.container, version.name, exc.__class__.__name__, exc)
            return Delivered("failed")
        if outcome.action != "duplicate":
            return Delivered(outcome.action, outcome.run_id)
        claim = claims.read(version.container, version.name, version.etag)
        pid = _left_by_a_dead_backfill(claim.invocation_id if claim else None)
        if claim is None or claim.state != ClaimState.SUBMITTING or pid is None:
            return Delivered("already claimed", claim.run_id if claim else None)
        # A backfill killed midway: give its claim back (no failure counted); the next attempt takes it over and
        # first asks the backend for a run of this version, so a run it did submit is found, not repeated.
        claims.abandon(claim, f"the backfill process that claimed it (pid {pid}) is gone")
    return Delivered("already claimed")


#: A cloud backfill of more versions than this asks first (each is a pipeline run: minutes of a node).
CONFIRM_ABOVE = 25


def parse_since(text: str) -> float:
    """An ISO 8601 date or date and time (UTC unless it says otherwise), as seconds since the epoch."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r} is not a date or date and time (2026-11-30, 2026-11-30T08:00)") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def command(prefix: str, since: float | None, *, dry_run: bool, yes: bool, max_in_flight: int,
            local: LocalSettings | None, env_file: os.PathLike[str] | None, out: TextIO,
            ask: Callable[[str], str] = input) -> int:
    """The CLI command; see ``sheetdrop backfill --help``. ``local``: the embedded default's settings; None: the
    deployed app (azd's environment, the Azure CLI login)."""
    from pathlib import Path

    from sheetdrop.storage import blob_service, storage_unreachable
    from sheetdrop.submit.backends import get_backend
    from sheetdrop.trigger import claim_store

    azure = local is None
    if azure:
        from sheetdrop.settings import load_settings
        from sheetdrop_local import deployed

        settings = load_settings(deployed.app_settings(deployed.azd_values(Path(env_file) if env_file else None)))
        deployed.use_signed_in_identity()
        where = f"{settings.storage.account_url} (signed in with the Azure CLI)"
    else:
        from sheetdrop_local import backend as local_backend
        from sheetdrop_local.readmodel.locations import check_reachable

        settings = local
        check_reachable(local)  # nothing answering is said within seconds, not after the SDK's retries
        local_backend.install(settings)
        where = "the local storage (Azurite)"
    container = blob_service(settings.storage).get_container_client(settings.input_container)
    claims = claim_store(settings)
    try:
        planned = plan(container, claims, prefix=prefix, since=since)
    except Exception as exc:
        if azure and storage_unreachable(exc):
            print(f"error: storage-unreachable: nothing answers at {settings.storage.account_url}", file=out)
            return 1
        raise
    seen = planned.listing
    print(f"{seen.listed} blobs under {settings.input_container}/{prefix} in {where}: {seen.unclaimed} versions to "
          f"convert ({planned.bytes / 1024**2:.1f} MiB), {seen.claimed} already claimed, {seen.unfinished} claimed "
          f"without a run yet (looked at again), {seen.not_workbooks} not workbooks"
          f"{f', {seen.out_of_window} older than --since' if since is not None else ''}", file=out)
    jobs = f"up to {len(planned.found)} {'pipeline runs' if azure else 'local runs'} on the {settings.backend} backend"
    if dry_run or not planned.found:
        print(f"would start {jobs}" if planned.found else "nothing to do", file=out)
        return 0
    if azure and len(planned.found) > CONFIRM_ABOVE and not yes:
        try:
            answer = ask(f"start {jobs} (each one a job on the workspace's cluster)? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not started (pass --yes to skip this question)", file=out)
            return 1
    backend = get_backend(settings)
    ended = getattr(backend, "ended", None)
    if ended is None and max_in_flight:
        print(f"note: the {settings.backend} backend cannot say which runs ended; --max-in-flight is not applied",
              file=out)
    try:
        # A cloud backend is asked every 5 s (one request per open run), the local run store every second.
        progress = run(planned, settings, claims, backend, max_in_flight=max_in_flight, out=out, ended=ended,
                       poll=5.0 if azure else 1.0)
    except KeyboardInterrupt:
        print("stopped: what was submitted runs on; `sheetdrop backfill` again goes on where this one stopped",
              file=out)
        return 130
    failed = progress.counts.get("failed", 0) + progress.counts.get("poisoned", 0)
    return 1 if failed else 0
