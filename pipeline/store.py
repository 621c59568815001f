"""The artifact store: where stage outputs live, and how they are committed atomically.

One interface, `Store`, two implementations: `LocalStore` (below) and `ObjectStore` (a gs://
or s3:// root, pipeline/objectstore.py); `Store(root)` returns the one the root needs, as
`pathlib.Path(...)` returns a PosixPath. The base class holds what both share: the one
execution path (`execute`: prepare an attempt, call the stage, write the manifests, commit,
clean up), lookups, locks and staging debris; an implementation says where things are and how
an attempt is prepared, committed and discarded.

Layout under a local pipeline root:

    artifacts/<stage>/<cache key>/manifest.json        the stage's record (written last)
    artifacts/<stage>/<cache key>/<output>/manifest.json  one artifact per output
    staging/<stage>-<cache key>-<pid>/                  work in progress, never trusted
    scratch/<stage>-<cache key>/                        state that survives a kill (checkpoints)
    locks/<stage>-<cache key>.lock                      who is computing that key right now
    runs/<run id>.json, runs/latest.json                run summaries

A stage writes into staging; the manifests are written last and the folder is renamed into
place in one `os.rename`, so a crash leaves only staging debris, which no lookup reads.

Two runs on one root that need the same key do not compute it twice: the second waits on the
key's lock (an flock, released by the kernel when its holder dies, even by SIGKILL), then finds
the first one's result committed and reuses it. So a stage's scratch folder (its checkpoints)
is only ever used by the one live process that holds the lock. This machine's own work (locks,
staging) lives in `local`: the root, or for an object store a folder of the edgepipe cache.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import pathlib
import shutil
import time
from typing import Any, Iterator

from edgepipe.contracts import storage
from edgepipe.contracts.artifacts import write_json
from edgepipe.pipeline.spec import StageResult, StageSpec
from edgepipe.pipeline.stage import Artifact, Context, StageConfig

MANIFEST = "manifest.json"
log = logging.getLogger("edgepipe")


@dataclasses.dataclass
class Attempt:
    """One try at computing a key: what the stage is given (`inputs`, `outputs`, `context`,
    local folders or URIs as the store decides) and where its files go until the commit."""

    inputs: dict[str, Artifact]
    outputs: dict[str, pathlib.Path | str]
    context: Context
    staging: pathlib.Path | None  # a local folder of this process, removed in any case
    target: str | None = None  # an object store's attempt prefix
    name: str = ""


class Store(abc.ABC):
    root: pathlib.Path | str
    local: pathlib.Path

    def __new__(cls, root: str | os.PathLike):
        if cls is Store:  # Store(root): the implementation the root needs
            from edgepipe.pipeline.objectstore import ObjectStore

            cls = ObjectStore if storage.is_remote(root) else LocalStore
        return super().__new__(cls)

    # ------------------------------------------------------------ what each one says

    @abc.abstractmethod
    def stage_dir(self, stage: str, key: str) -> pathlib.Path | str:
        """The folder of a key's committed record."""

    @abc.abstractmethod
    def scratch_dir(self, stage: str, key: str) -> pathlib.Path:
        """A local folder that survives a kill of the process."""

    @abc.abstractmethod
    def output_path(self, stage: str, key: str, output: str) -> pathlib.Path | str:
        """Where a planned output will be (on an object store: a placeholder until the commit
        names the attempt)."""

    @abc.abstractmethod
    def output_paths(self, stage: str, key: str, record: dict[str, Any]) -> dict[str, Any]:
        """{output name: its committed folder} of a stage record."""

    @abc.abstractmethod
    def write_run_summary(self, summary: dict[str, Any]) -> None:
        """runs/<run id>.json and runs/latest.json, each replaced in one step."""

    @abc.abstractmethod
    def _begin(self, spec: StageSpec, key: str, inputs: dict[str, Artifact],
               context: Context) -> Attempt:
        """Empty output folders and the inputs and context the stage gets."""

    @abc.abstractmethod
    def _commit(self, attempt: Attempt, spec: StageSpec, key: str,
                manifests: dict[str, dict[str, Any]], replace: bool) -> dict[str, Any]:
        """Make the attempt the key's result; returns the committed record (another run's
        when it committed an equal result first)."""

    @abc.abstractmethod
    def _discard(self, attempt: Attempt, committed: dict[str, Any] | None) -> None:
        """Remove what the attempt left that is not the committed result (all of it when
        `committed` is None: the stage failed)."""

    # ------------------------------------------------------------ the same for both

    def check(self) -> None:
        """StorageError naming the root and what to install or set when it cannot be used."""
        storage.check_reachable(self.root)

    def lookup(self, stage: str, key: str) -> dict[str, Any] | None:
        """The committed stage manifest for this key, or None if there is none."""
        try:
            return json.loads(storage.read_text(storage.join(self.stage_dir(stage, key),
                                                             MANIFEST)))
        except FileNotFoundError:
            return None

    def artifacts(self, stage: str, key: str) -> dict[str, Artifact]:
        record = self.lookup(stage, key)
        if record is None:
            raise FileNotFoundError(f"No committed artifacts for stage {stage!r} key {key}")
        return {name: Artifact.load(path)
                for name, path in self.output_paths(stage, key, record).items()}

    def execute(
        self,
        spec: StageSpec,
        key: str,
        inputs: dict[str, Artifact],
        config: StageConfig,
        context: Context,
        record: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> tuple[StageResult, dict[str, Artifact]]:
        """Run one stage and commit its outputs: the one place a stage is called. Returns
        (the committed result, the committed artifacts).

        On any exception the attempt's files are removed and nothing is committed. With
        `replace` (--no-cache), a committed result under the same key is swapped out for the
        new one only once the new one is complete.
        """
        attempt = self._begin(spec, key, inputs, context)
        started = time.monotonic()
        try:
            result = StageResult.of(
                spec.run(attempt.inputs, attempt.outputs, config, attempt.context), spec.name)
            manifests = self.manifests(spec, key, inputs, attempt.context, result,
                                       seconds=round(time.monotonic() - started, 3),
                                       record=record)
            committed = self._commit(attempt, spec, key, manifests, replace)
        except BaseException:
            self._discard(attempt, None)
            raise
        self._discard(attempt, committed)
        return StageResult.from_record(committed), self.artifacts(spec.name, key)

    @staticmethod
    def manifests(spec: StageSpec, key: str, inputs: dict[str, Artifact], context: Context,
                  result: StageResult, seconds: float,
                  record: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """{output name: its manifest} and, under "" (last), the stage's record (with the
        result's signals: halt, resumed)."""
        properties = result.properties
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        manifests = {name: {
            "kind": kind, "stage": spec.name, "output": name, "key": key,
            "created": created, "run_id": context.run_id, "properties": properties,
        } for name, kind in spec.outputs.items()}
        manifests[""] = {
            "stage": spec.name, "version": spec.version, "key": key, "created": created,
            "run_id": context.run_id, "seconds": seconds,
            "outputs": dict(spec.outputs),
            "inputs": {name: str(artifact.path) for name, artifact in inputs.items()},
            "properties": properties, "halt": result.halt, "resumed": result.resumed,
            **(record or {}),
        }
        return manifests

    @contextlib.contextmanager
    def lock(self, stage: str, key: str, owner: str) -> Iterator[None]:
        """Hold the key's lock for the block; wait (saying for whom) while another live
        process holds it. `owner` (run id and pid) is recorded for the next one to name."""
        path = self.local / "locks" / f"{stage}-{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                log.info("%s key %s is being computed by %s: waiting for it to finish",
                         stage, key, holder)
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(owner)
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def latest_run(self) -> dict[str, Any] | None:
        path = storage.join(self.root, "runs", "latest.json")
        try:
            return json.loads(storage.read_text(path))
        except FileNotFoundError:
            return None

    def remove_stale_staging(self) -> list[pathlib.Path]:
        """Staging folders of processes that no longer exist are debris of a crash: remove
        them; returns what was removed."""
        staging = self.local / "staging"
        removed = []
        for folder in sorted(staging.iterdir()) if staging.is_dir() else []:
            pid = folder.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


class LocalStore(Store):
    """A root on a local (or mounted) file system: commit by renaming the staging folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = self.local = pathlib.Path(root).resolve()

    def stage_dir(self, stage: str, key: str) -> pathlib.Path:
        return self.root / "artifacts" / stage / key

    def scratch_dir(self, stage: str, key: str) -> pathlib.Path:
        return self.root / "scratch" / f"{stage}-{key}"

    def output_path(self, stage: str, key: str, output: str) -> pathlib.Path:
        return self.stage_dir(stage, key) / output

    def output_paths(self, stage: str, key: str, record: dict[str, Any]) -> dict[str, Any]:
        return {name: self.output_path(stage, key, name) for name in record["outputs"]}

    def write_run_summary(self, summary: dict[str, Any]) -> None:
        runs = self.root / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        for name in (f"{summary['run_id']}.json", "latest.json"):
            write_json(runs / name, summary)

    def _begin(self, spec, key, inputs, context) -> Attempt:
        staging = self.root / "staging" / f"{spec.name}-{key}-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        outputs = {name: staging / name for name in spec.outputs}
        for path in outputs.values():
            path.mkdir(parents=True)
        pathlib.Path(context.scratch_dir).mkdir(parents=True, exist_ok=True)
        return Attempt(inputs, outputs, context, staging)

    def _commit(self, attempt, spec, key, manifests, replace) -> dict[str, Any]:
        """Write the manifests (the outputs' first, the record last), then rename the staging
        folder into place in one step."""
        staging = attempt.staging
        for name, manifest in manifests.items():
            write_json(staging / name / MANIFEST if name else staging / MANIFEST, manifest)
        target = self.stage_dir(spec.name, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and replace:
            retired = target.with_name(f".{target.name}-replaced-{os.getpid()}")
            os.rename(target, retired)
            os.rename(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        elif not target.exists():
            os.rename(staging, target)
        return self.lookup(spec.name, key)  # else an equal result committed meanwhile

    def _discard(self, attempt, committed) -> None:
        shutil.rmtree(attempt.staging, ignore_errors=True)
        if committed is not None:  # the checkpoints of a committed key are of no more use
            shutil.rmtree(attempt.context.scratch_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
