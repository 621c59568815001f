"""The artifact store: where stage outputs live, and how they are committed atomically.

Layout under a local pipeline root (an object-store root, gs:// or s3://, commits by an
exclusively created manifest instead of a rename: pipeline/objectstore.py):

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
is only ever used by the one live process that holds the lock.

The root may be a local path or a URI (gs://BUCKET/PREFIX). For a URI, `root` is that string,
artifact paths are URIs, and this machine's own work for the root (locks, the staging folders
of stages that need local files, local copies of inputs) lives in `local`, a folder of the
edgepipe cache (edgepipe.contracts.storage.cache_dir).
"""

from __future__ import annotations

import contextlib
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
from edgepipe.pipeline import objectstore
from edgepipe.pipeline.spec import StageResult, StageSpec
from edgepipe.pipeline.stage import Artifact, Context, StageConfig

MANIFEST = "manifest.json"
log = logging.getLogger("edgepipe")


class Store:
    def __init__(self, root: str | os.PathLike):
        self.remote = storage.is_remote(root)
        if self.remote:
            self.root: pathlib.Path | str = os.fspath(root).rstrip("/")
            self.local = objectstore.local_folder(self.root)
        else:
            self.root = self.local = pathlib.Path(root).resolve()

    def stage_dir(self, stage: str, key: str) -> pathlib.Path | str:
        if self.remote:
            return storage.join(self.root, "artifacts", stage, key)
        return self.root / "artifacts" / stage / key

    def scratch_dir(self, stage: str, key: str) -> pathlib.Path:
        """A local folder that survives a kill of the process (see objectstore.local_scratch
        for an object-store root)."""
        if self.remote:
            return objectstore.local_scratch(self, stage, key)
        return self.root / "scratch" / f"{stage}-{key}"

    def check(self) -> None:
        """StorageError naming the root and what to install or set when it cannot be used."""
        storage.check_reachable(self.root)

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

    def lookup(self, stage: str, key: str) -> dict[str, Any] | None:
        """The committed stage manifest for this key, or None if there is none."""
        if self.remote:
            return objectstore.lookup(self, stage, key)
        manifest = self.stage_dir(stage, key) / MANIFEST
        if not manifest.is_file():
            return None
        return json.loads(manifest.read_text())

    def output_paths(self, stage: str, key: str, record: dict[str, Any]) -> dict[str, Any]:
        """{output name: its committed folder} of a stage record."""
        if self.remote:
            return objectstore.output_paths(self, stage, key, record)
        return {name: self.stage_dir(stage, key) / name for name in record["outputs"]}

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
        """Run one stage into staging and commit its outputs; returns (its result, the
        committed artifacts).

        On any exception the staging folder is removed and nothing is committed. With
        `replace` (--no-cache), a committed result under the same key is swapped out for the
        new one only once the new one is complete.
        """
        if self.remote:
            return objectstore.execute(self, spec, key, inputs, config, context, record,
                                       replace)
        staging = self.root / "staging" / f"{spec.name}-{key}-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        outputs = {name: staging / name for name in spec.outputs}
        for path in outputs.values():
            path.mkdir(parents=True)
        context.scratch_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            result = StageResult.of(spec.run(inputs, outputs, config, context), spec.name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        manifests = self.manifests(spec, key, inputs, context, result,
                                   seconds=round(time.monotonic() - started, 3), record=record)
        for name, manifest in manifests.items():  # the outputs' first, the stage's record last
            write_json(staging / name / MANIFEST if name else staging / MANIFEST, manifest)
        self._commit(staging, self.stage_dir(spec.name, key), replace)
        shutil.rmtree(context.scratch_dir, ignore_errors=True)
        return result, self.artifacts(spec.name, key)

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

    @staticmethod
    def _commit(staging: pathlib.Path, target: pathlib.Path, replace: bool) -> None:
        """Rename the finished staging folder into place, in one step."""
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and replace:
            retired = target.with_name(f".{target.name}-replaced-{os.getpid()}")
            os.rename(target, retired)
            os.rename(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        elif target.exists():  # an equal result committed meanwhile by another process
            shutil.rmtree(staging, ignore_errors=True)
        else:
            os.rename(staging, target)

    def write_run_summary(self, summary: dict[str, Any]) -> None:
        """runs/<run id>.json and runs/latest.json, each replaced in one step."""
        if self.remote:
            for name in (f"{summary['run_id']}.json", "latest.json"):
                storage.write_text(storage.join(self.root, "runs", name),
                                   json.dumps(summary, indent=2) + "\n")
            return
        runs = self.root / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        for name in (f"{summary['run_id']}.json", "latest.json"):
            write_json(runs / name, summary)

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
