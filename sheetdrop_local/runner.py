"""The local pipeline runner: does for a queued run what AzureML does for the extract pipeline.

For each run: a step run id; the output folder left for the step to create, in today's common-runtime
layout or the legacy one (:mod:`sheetdrop_local.mounts`); the run's definition written in AzureML's shape (its
output's datastore path, ``azureml/<step run id>/extracted``); the step's entry script ``extract.py``, from
the snapshot AzureML is given (:mod:`pipeline.snapshot`), run in a subprocess with the argv of the one
step contract; its log kept; the output uploaded to the output datastore's container at that path;
then, in one transaction, the step's dataset registrations applied and the run marked completed.

The runner reads nothing of the input blob, as AzureML mounts none: the step reads the version its run names
itself, by etag, so a version replaced before the step ran ends the run ``superseded`` by the step's own check
(and the newer version's run converts it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import snapshot
from sheetdrop.storage import blob_service, ensure_container, one_line, storage_unreachable
from sheetdrop_contract import batch as batch_contract
from sheetdrop_contract import contract
from sheetdrop_local import db, registry, runstore
from sheetdrop_local.emulations import emulation
from sheetdrop_local.mounts import StepMounts
from sheetdrop_local.recovery import StorageRestarts
from sheetdrop_local.runstore import Run, RunStatus
from sheetdrop_local.settings import LocalSettings
from sheetdrop_step.contexts.local import LOCAL_RUN_ENV, LOCAL_STORAGE_ENV, LOCAL_STORAGE_RETRIES_ENV

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

log = logging.getLogger("sheetdrop.runner")

#: What the step's process inherits: enough to run Python. Storage reaches it as SHEETDROP_LOCAL_STORAGE only,
#: the runner's own Azurite connection (its key is Azurite's published one), kept out of every file and log.
STEP_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")


class RunFailed(Exception):
    """A run that ends as failed; the message is the reason a person reads in ``sheetdrop runs``."""


class StepKilled(Exception):
    """The step's process was killed from outside (not by its own time limit): not the workbook's
    fault, so the run is tried again, a bounded number of times."""


class StorageUnreachable(Exception):
    """The step could not read its input because storage did not answer: run it again."""


class OutputLost(Exception):
    """Storage restarted during the run and lost what the runner had uploaded: run it again."""


@dataclass
class LocalRunner:
    settings: LocalSettings
    conn: sqlite3.Connection
    service: BlobServiceClient
    python: str = sys.executable
    #: The step's snapshot; by default the one assembled from the checkout under <state>/snapshots.
    step_dir: Path | None = None
    keep_mounts: bool = False
    max_attempts: int = 3
    requeue_delay: float = 10.0
    restarts: StorageRestarts = field(default_factory=StorageRestarts)

    @classmethod
    def from_settings(cls, settings: LocalSettings) -> LocalRunner:
        return cls(settings=settings, conn=db.connect(settings.state_dir), service=blob_service(settings.storage))

    @property
    def runs_dir(self) -> Path:
        return self.settings.state_dir / "runs"

    def run_next(self) -> Run | None:
        """Run the oldest queued run, if any; return it as it ended."""
        run = runstore.take_next(self.conn)
        if run is None:
            return None
        self.execute(run)
        return runstore.get(self.conn, run.run_id)

    def execute(self, run: Run) -> None:
        assert run.step_run_id, "take_next gives every running run a step run id"
        root = self.runs_dir / run.run_id
        root.mkdir(parents=True, exist_ok=True)
        log_path = root / "std_log.txt"
        log.info("run %s started: %s/%s", run.run_id, run.source_container, run.source_blob)
        mounts: StepMounts | None = None
        restarts_before = self.restarts.count
        try:
            self._delete_abandoned_outputs(run)
            mounts = emulation(self.settings.step_api).mounts(self.settings, root, run)
            # Where AzureML keeps a PipelineData, or where a v2 invocation puts the output: the runner knows it
            # as the service or the Function does, and tells the step (run definition, or --output_path).
            output_path = contract.output_relative_path(run.step_run_id)
            outbox = self._run_step(run, root, mounts, output_path, log_path)
            if run.kind == "batch":
                uploaded = self._upload(mounts.output_dir, output_path)
                with self.restarts.lock, runstore.transaction(self.conn):
                    if self.restarts.count != restarts_before:
                        self._check_uploaded(uploaded)
                    counts = self._commit_batch(run, outbox, output_path, log_path)
                log.info("batch run %s completed: %s", run.run_id, counts)
                return
            if contract.SUPERSEDED_TAG in outbox:
                newer = outbox[contract.SUPERSEDED_TAG]
                # The etag is kept where AzureML keeps it, among the run's tags and metrics (the read model reads it).
                runstore.finish(self.conn, run.run_id, RunStatus.SUPERSEDED,
                                metrics={**outbox.get("metrics", {}), contract.SUPERSEDED_TAG: newer},
                                error=superseded_reason(newer), log_path=str(log_path))
                log.info("run %s superseded by etag %s: nothing registered", run.run_id, newer)
                return
            uploaded = self._upload(mounts.output_dir, output_path)
            with self.restarts.lock, runstore.transaction(self.conn):
                if self.restarts.count != restarts_before:
                    self._check_uploaded(uploaded)
                for item in outbox.get("registrations", []):
                    version = registry.register(
                        self.conn,
                        name=item["name"], datastore=item["datastore"], relative_path=item["relative_path"],
                        description=item.get("description", ""), tags=item.get("tags", {}), run_id=run.run_id,
                    )
                    log.info("run %s registered dataset %s version %d", run.run_id, item["name"], version)
                runstore.finish(
                    self.conn, run.run_id, RunStatus.COMPLETED, metrics=outbox.get("metrics", {}),
                    output_path=output_path, log_path=str(log_path),
                )
            log.info("run %s completed", run.run_id)
        except Exception as exc:  # a failed step is a failed run, never a dead host
            retryable = "storage unreachable" if storage_unreachable(exc) or isinstance(exc, StorageUnreachable) \
                else str(exc) if isinstance(exc, StepKilled | OutputLost) else None
            if retryable and run.attempts < self.max_attempts:
                # Not the workbook's fault: run it again (nothing was registered).
                log.warning("run %s: %s (%s); queued again (attempt %d of %d)", run.run_id, retryable,
                            exc.__class__.__name__, run.attempts, self.max_attempts)
                runstore.requeue(self.conn, run.run_id, f"attempt {run.attempts}: {retryable}",
                                 delay=self.requeue_delay * run.attempts)
                return
            # One line a person reads, whatever failed (a storage error's text carries its headers and XML).
            reason = str(exc) if isinstance(exc, RunFailed | StepKilled) else one_line(exc)
            log.warning("run %s failed: %s", run.run_id, reason)
            with runstore.transaction(self.conn):
                runstore.finish(self.conn, run.run_id, RunStatus.FAILED, error=reason, log_path=str(log_path))
                for version in runstore.batch_versions(self.conn, run.run_id):  # a batch fails each of its versions
                    runstore.finish_version(self.conn, version.run_id, RunStatus.FAILED, metrics={},
                                            error=f"the batch run failed: {reason}", output_path=None,
                                            log_path=str(log_path))
        finally:
            for mount_root in (mounts.roots if mounts and not self.keep_mounts else ()):
                shutil.rmtree(mount_root, ignore_errors=True)

    def _delete_abandoned_outputs(self, run: Run) -> None:
        """What earlier attempts of this run uploaded before they were cut short (no dataset points
        at it: registration commits with completion)."""
        if not run.abandoned_attempts:
            return
        from azure.core.exceptions import ResourceNotFoundError

        container = self.service.get_container_client(self.settings.local_output_container)
        for step_run_id in run.abandoned_attempts:
            prefix = f"{contract.output_relative_path(step_run_id)}/"
            try:
                names = list(container.list_blob_names(name_starts_with=prefix))
            except ResourceNotFoundError:  # the container is gone (storage lost it): so is what they left
                names = []
            for name in names:
                container.delete_blob(name)
                log.info("run %s: deleted %s, left by an attempt that was cut short", run.run_id, name)
        runstore.forget_abandoned(self.conn, run.run_id)

    def _run_step(self, run: Run, root: Path, mounts: StepMounts, output_path: str,
                  log_path: Path) -> dict[str, Any]:
        api = emulation(self.settings.step_api)
        run_file = root / "run.json"
        outbox = root / "outbox.json"
        outbox.unlink(missing_ok=True)
        versions = runstore.batch_versions(self.conn, run.run_id) if run.kind == "batch" else [run]
        previous: dict[str, dict[str, str]] = {}
        for name in sorted({v.dataset_name for v in versions}):
            previous |= registry.latest_by_prefix(self.conn, name)
        run_file.write_text(json.dumps({
            "run_id": run.run_id,
            "step_run_id": run.step_run_id,
            # What the run or job says of itself where the step looks (the emulated AzureML's shape).
            **api.run_spec(self.settings, run.step_run_id, output_path),
            "outbox": str(outbox),
            # What AzureML's registry would answer the step about the versions it follows.
            "previousVersions": previous,
            # Where a folder switched to table mode starts from (sheetdrop_step.tables).
            "perFileVersions": {name: registry.per_file_versions(self.conn, name)
                                for name in sorted({v.dataset_name for v in versions})},
            # The containers that play the datastores, where table manifests are committed.
            "containers": {self.settings.output_datastore: self.settings.local_output_container},
        }, indent=2), encoding="utf-8")
        encode = contract.encode_argument
        if run.kind == "batch":
            # A batch run's parameters: the manifest, the single version's others at their placeholders.
            single = (contract.PLACEHOLDER_DATASET_NAME, contract.PLACEHOLDER_SOURCE, contract.PLACEHOLDER_READ_OPTIONS)
            manifest: str | None = batch_contract.encode_manifest(
                batch_contract.PinnedVersion(v.source_container, v.source_blob, v.source_etag, v.dataset_name,
                                             v.read_options, v.source_attempt) for v in versions)
        else:
            single = (run.dataset_name, contract.source_version(run.source_container, run.source_blob,
                                                                run.source_etag, run.source_attempt), run.read_options)
            manifest = None
        # What the Function (or the publisher) would send, as the step gets it: every value encoded. The step's
        # own settings (SHEETDROP_MAX_CELLS, …) come from this process's environment, on the command line.
        argv = [str(a) for a in contract.step_arguments(
            encode(self.service.url.rstrip("/")), str(mounts.output_dir), encode(self.settings.output_datastore),
            *(encode(value) for value in single),
            output_path=encode(output_path) if api.OUTPUT_CHOSEN_AT_INVOCATION else None, manifest=manifest,
            settings={**api.SETTINGS, **{k: v for k, v in os.environ.items() if k in contract.STEP_SETTING_NAMES}})]
        env = {k: v for k, v in os.environ.items() if k in STEP_ENV_KEEP} | mounts.env
        env[LOCAL_RUN_ENV] = str(run_file)
        if self.settings.storage.connection_string:
            env[LOCAL_STORAGE_ENV] = self.settings.storage.connection_string
        env[LOCAL_STORAGE_RETRIES_ENV] = str(self.settings.storage.retry_total)
        env["PYTHONUNBUFFERED"] = "1"
        step_dir = self.step_dir or snapshot.built(self.settings.state_dir / "snapshots")
        with open(log_path, "w", encoding="utf-8") as handle:
            handle.write(f"$ {contract.SCRIPT_NAME} {' '.join(argv)}\n")
            handle.flush()
            try:
                proc = subprocess.run(
                    [self.python, str(step_dir / contract.SCRIPT_NAME), *argv],
                    cwd=step_dir, env=env, stdout=handle, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, timeout=self.settings.step_timeout, check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise RunFailed(
                    f"the step did not finish within {self.settings.step_timeout:.0f} s (LOCAL_STEP_TIMEOUT)") from exc
        if proc.returncode < 0:
            raise StepKilled(f"the step was killed by {signal.Signals(-proc.returncode).name}")
        if proc.returncode == contract.EXIT_STORAGE_UNREACHABLE:
            raise StorageUnreachable(_failure_reason(log_path, proc.returncode))
        if proc.returncode != 0:
            raise RunFailed(_failure_reason(log_path, proc.returncode))
        if not outbox.exists():
            raise RunFailed(f"the step exited 0 but reported no result; see {log_path}")
        return json.loads(outbox.read_text(encoding="utf-8"))

    def _commit_batch(self, run: Run, outbox: dict[str, Any], output_path: str, log_path: Path) -> dict[str, int]:
        """A batch's registrations, each under the version it converted, every version's outcome, and the batch run
        completed (whatever its versions' outcomes: a bad workbook fails its version, not the batch)."""
        versions = runstore.batch_versions(self.conn, run.run_id)
        by_key = {batch_contract.version_key(v.source_container, v.source_blob, v.source_etag, v.source_attempt): v
                  for v in versions}
        for item in outbox.get("registrations", []):
            tags = item.get("tags", {})
            # Under the version it converted; a table version that only drops rows (a workbook of the batch found
            # deleted) names no source, and is the batch's own.
            version = by_key.get(batch_contract.version_key(*(tags.get(k, "") for k in contract.SOURCE_TAGS),
                                                            contract.attempt_of(tags)))
            registry.register(self.conn, name=item["name"], datastore=item["datastore"],
                              relative_path=item["relative_path"], description=item.get("description", ""),
                              tags=tags, run_id=version.run_id if version else run.run_id)
        reported = {item["position"]: batch_contract.VersionOutcome.from_json(item)
                    for item in outbox.get("versions", [])}
        for version in versions:
            assert version.batch_position is not None
            ended = reported.get(version.batch_position)
            status, error, metrics = _version_status(ended)
            runstore.finish_version(self.conn, version.run_id, status, metrics=metrics, error=error,
                                    output_path=batch_contract.version_folder(output_path, version.batch_position),
                                    log_path=str(log_path))
        runstore.finish(self.conn, run.run_id, RunStatus.COMPLETED, metrics=outbox.get("metrics", {}),
                        output_path=output_path, log_path=str(log_path))
        return batch_contract.outcome_counts(reported.values())

    def _upload(self, output_dir: Path, output_path: str) -> list[str]:
        container = ensure_container(self.service, self.settings.local_output_container)
        names = []
        for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
            names.append(f"{output_path}/{path.relative_to(output_dir).as_posix()}")
            with open(path, "rb") as handle:
                container.upload_blob(names[-1], handle, overwrite=True)
        return names

    def _check_uploaded(self, names: list[str]) -> None:
        container = self.service.get_container_client(self.settings.local_output_container)
        missing = [name for name in names if not container.get_blob_client(name).exists()]
        if missing:
            raise OutputLost(f"storage restarted during the run and lost {len(missing)} output file(s)")


#: A batch version's outcome as the run store says a run ended.
OUTCOME_STATUS = {"converted": RunStatus.COMPLETED, "rejected": RunStatus.FAILED,
                  "superseded": RunStatus.SUPERSEDED, "failed": RunStatus.FAILED}


def _version_status(ended: batch_contract.VersionOutcome | None) -> tuple[RunStatus, str | None, dict[str, Any]]:
    if ended is None:
        return RunStatus.FAILED, "the batch step reported no outcome for this version", {}
    if ended.outcome == "superseded":
        newer = str(ended.superseded_by_etag)
        return RunStatus.SUPERSEDED, superseded_reason(newer), {**ended.metrics, contract.SUPERSEDED_TAG: newer}
    error = f"{ended.code}: {ended.reason}" if ended.code else None
    return OUTCOME_STATUS[ended.outcome], error, ended.metrics


def superseded_reason(newer_etag: str) -> str:
    return (f"superseded: the blob was replaced (etag {newer_etag}) before this run read it; nothing registered, "
            "the run of the newer version converts it")


def _failure_reason(log_path: Path, returncode: int) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    tail = " | ".join(line.strip() for line in lines[-3:] if line.strip())
    return f"the step exited with code {returncode}: {tail} (full log: {log_path})"
