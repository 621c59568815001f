"""The artifact store: where stage outputs live, and how they are committed atomically.

Layout under the pipeline root:

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
from types import ModuleType
from typing import Any, Iterator

from edgepipe.contracts.artifacts import write_json
from edgepipe.pipeline.stage import Artifact, Context, StageConfig

MANIFEST = "manifest.json"
log = logging.getLogger("edgepipe")


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = pathlib.Path(root).resolve()

    def stage_dir(self, stage: str, key: str) -> pathlib.Path:
        return self.root / "artifacts" / stage / key

    def scratch_dir(self, stage: str, key: str) -> pathlib.Path:
        return self.root / "scratch" / f"{stage}-{key}"

    @contextlib.contextmanager
    def lock(self, stage: str, key: str, owner: str) -> Iterator[None]:
        """Hold the key's lock for the block; wait (saying for whom) while another live
        process holds it. `owner` (run id and pid) is recorded for the next one to name."""
        path = self.root / "locks" / f"{stage}-{key}.lock"
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
        manifest = self.stage_dir(stage, key) / MANIFEST
        if not manifest.is_file():
            return None
        return json.loads(manifest.read_text())

    def artifacts(self, stage: str, key: str) -> dict[str, Artifact]:
        base = self.stage_dir(stage, key)
        record = self.lookup(stage, key)
        if record is None:
            raise FileNotFoundError(f"No committed artifacts for stage {stage!r} key {key}")
        return {name: Artifact.load(base / name) for name in record["outputs"]}

    def execute(
        self,
        module: ModuleType,
        key: str,
        inputs: dict[str, Artifact],
        config: StageConfig,
        context: Context,
        record: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Artifact]]:
        """Run one stage into staging and commit its outputs; returns (its properties, the
        committed artifacts).

        On any exception the staging folder is removed and nothing is committed. With
        `replace` (--no-cache), a committed result under the same key is swapped out for the
        new one only once the new one is complete.
        """
        staging = self.root / "staging" / f"{module.NAME}-{key}-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        outputs = {name: staging / name for name in module.OUTPUTS}
        for path in outputs.values():
            path.mkdir(parents=True)
        context.scratch_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            properties = module.run(inputs, outputs, config, context) or {}
            json.dumps(properties)  # fail here, not after commit, if a stage returns non-JSON
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._write_manifests(module, key, staging, inputs, context, properties,
                              seconds=round(time.monotonic() - started, 3), record=record)
        self._commit(staging, self.stage_dir(module.NAME, key), replace)
        shutil.rmtree(context.scratch_dir, ignore_errors=True)
        return properties, self.artifacts(module.NAME, key)

    @staticmethod
    def _write_manifests(module: ModuleType, key: str, staging: pathlib.Path,
                         inputs: dict[str, Artifact], context: Context,
                         properties: dict[str, Any], seconds: float,
                         record: dict[str, Any] | None) -> None:
        """One manifest per output, then the stage's record: the last file written."""
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for name, kind in module.OUTPUTS.items():
            write_json(staging / name / MANIFEST, {
                "kind": kind, "stage": module.NAME, "output": name, "key": key,
                "created": created, "run_id": context.run_id, "properties": properties,
            })
        write_json(staging / MANIFEST, {
            "stage": module.NAME, "version": module.VERSION, "key": key, "created": created,
            "run_id": context.run_id, "seconds": seconds,
            "outputs": dict(module.OUTPUTS),
            "inputs": {name: str(artifact.path) for name, artifact in inputs.items()},
            "properties": properties, **(record or {}),
        })

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
        runs = self.root / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        for name in (f"{summary['run_id']}.json", "latest.json"):
            write_json(runs / name, summary)

    def latest_run(self) -> dict[str, Any] | None:
        path = self.root / "runs" / "latest.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def remove_stale_staging(self) -> list[pathlib.Path]:
        """Staging folders of processes that no longer exist are debris of a crash: remove
        them; returns what was removed."""
        staging = self.root / "staging"
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
