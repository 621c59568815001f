"""Commits on an object store (a gs:// or s3:// artifact root), where there is no rename.

Layout under the root (the local layout of pipeline/store.py, with attempts):

    artifacts/<stage>/<key>/attempts/<attempt>/<output>/...   one attempt's files, each
                                                               output with its manifest.json
    artifacts/<stage>/<key>/manifest.json                      the commit: the stage's record,
                                                               naming the attempt it commits
    scratch/<stage>-<key>/<attempt>/                           a Beam stage's work files
    runs/<run id>.json, runs/latest.json                       run summaries

Every attempt writes under a prefix of its own, so two runs computing the same key never
write the same object. The commit is the creation of the key's manifest.json with
`storage.create_exclusive` (GCS: ifGenerationMatch=0): the first attempt to create it wins;
a later one deletes its own files and uses the winner's result (same key, same inputs, same
code and config: an equal result). Readers only follow a manifest, so a folder without one
(an attempt that crashed, was killed, or lost the race) is absent for every reader.

Stages whose spec says remote_io (ingest and statistics: Beam reads and writes
gs:// directly, so on Dataflow the workers write straight into the bucket) get URIs for their
inputs, outputs and scratch_dir. Every other stage (TensorFlow needs local files) gets local
copies of its inputs (downloaded once per machine into the edgepipe cache) and local output
folders, which are uploaded into the attempt before the commit; its scratch_dir
(checkpoints) is local too: under Cloud Storage FUSE's /gcs/<bucket>/ mount when there is one
(Vertex AI jobs), so a restarted machine resumes from the bucket, else in the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import time
import uuid
from typing import Any

from edgepipe.contracts import storage
from edgepipe.pipeline.spec import StageResult, StageSpec
from edgepipe.pipeline.stage import Artifact, Context, StageConfig

MANIFEST = "manifest.json"
log = logging.getLogger("edgepipe")


def local_folder(root: str) -> pathlib.Path:
    """This machine's work folder for an object-store root, in the edgepipe cache."""
    return storage.cache_dir("roots", hashlib.sha256(root.encode()).hexdigest()[:16])


def local_scratch(store, stage: str, key: str) -> pathlib.Path:
    """A stage's scratch folder for an object-store root: in the bucket through Cloud Storage
    FUSE when /gcs/<bucket> is mounted (EDGEPIPE_GCS_FUSE_ROOT names another mount point),
    else in this machine's cache."""
    if storage.scheme(store.root) == "gs":
        bucket, _, prefix = store.root.split("://", 1)[1].partition("/")
        mount = pathlib.Path(os.environ.get("EDGEPIPE_GCS_FUSE_ROOT", "/gcs"), bucket)
        if mount.is_dir():
            return mount.joinpath(*filter(None, prefix.split("/")), "scratch", f"{stage}-{key}")
    return store.local / "scratch" / f"{stage}-{key}"


def lookup(store, stage: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(storage.read_text(storage.join(store.stage_dir(stage, key), MANIFEST)))
    except FileNotFoundError:
        return None


def output_paths(store, stage: str, key: str, record: dict[str, Any]) -> dict[str, str]:
    attempt = attempt_dir(store, stage, key, record["attempt"])
    return {name: storage.join(attempt, name) for name in record["outputs"]}


def attempt_dir(store, stage: str, key: str, attempt: str) -> str:
    return storage.join(store.stage_dir(stage, key), "attempts", attempt)


def local_input(artifact: Artifact) -> Artifact:
    """The same artifact in a local folder (a copy kept in the cache: committed attempts never
    change)."""
    return dataclasses.replace(artifact, path=storage.local_copy(artifact.path))


def execute(store, spec: StageSpec, key: str, inputs: dict[str, Artifact],
            config: StageConfig, context: Context, record: dict[str, Any] | None,
            replace: bool) -> tuple[StageResult, dict[str, Artifact]]:
    """Store.execute on an object store: run into a new attempt, then commit it (see the
    module docstring); returns the committed (possibly another run's) properties and
    artifacts."""
    attempt = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    target = attempt_dir(store, spec.name, key, attempt)
    direct = spec.remote_io
    staging = store.local / "staging" / f"{spec.name}-{key}-{attempt}-{os.getpid()}"
    if direct:
        outputs = {name: storage.join(target, name) for name in spec.outputs}
        context = dataclasses.replace(context, scratch_dir=storage.join(
            store.root, "scratch", f"{spec.name}-{key}", attempt))
        stage_inputs = inputs
    else:
        shutil.rmtree(staging, ignore_errors=True)
        outputs = {name: staging / name for name in spec.outputs}
        for path in outputs.values():
            path.mkdir(parents=True)
        pathlib.Path(context.scratch_dir).mkdir(parents=True, exist_ok=True)
        stage_inputs = {name: local_input(artifact) for name, artifact in inputs.items()}
    started = time.monotonic()
    try:
        result = StageResult.of(spec.run(stage_inputs, outputs, config, context), spec.name)
        manifests = store.manifests(spec, key, inputs, context, result,
                                    seconds=round(time.monotonic() - started, 3), record=record)
        _upload(target, staging if not direct else None, manifests)
    except BaseException:
        _discard(target, staging, context, direct)
        raise
    committed = _commit(store, spec.name, key, {**manifests[""], "attempt": attempt}, replace)
    _discard(target if committed["attempt"] != attempt else None, staging, context, direct)
    if not direct:
        shutil.rmtree(context.scratch_dir, ignore_errors=True)
    return StageResult.from_record(committed), store.artifacts(spec.name, key)


def _upload(target: str, staging: pathlib.Path | None,
            manifests: dict[str, dict[str, Any]]) -> None:
    """The attempt's files: a local staging folder uploaded, then each output's manifest."""
    if staging is not None:
        storage.upload_tree(staging, target)
    for name, manifest in manifests.items():
        if name:
            storage.write_text(storage.join(target, name, MANIFEST),
                               json.dumps(manifest, indent=2) + "\n")


def _commit(store, stage: str, key: str, record: dict[str, Any],
            replace: bool) -> dict[str, Any]:
    """Create the key's manifest.json unless another attempt did first; returns the record
    that is committed. With `replace` (--no-cache) the manifest is overwritten (one upload,
    atomic for readers) and the attempt it named is deleted."""
    manifest = storage.join(store.stage_dir(stage, key), MANIFEST)
    data = (json.dumps(record, indent=2) + "\n").encode()
    if replace:
        previous = lookup(store, stage, key)
        storage.write_bytes(manifest, data)
        if previous and previous.get("attempt") not in (None, record["attempt"]):
            storage.remove_tree(attempt_dir(store, stage, key, previous["attempt"]))
        return record
    if storage.create_exclusive(manifest, data):
        return record
    winner = lookup(store, stage, key)
    log.info("%s key %s was committed meanwhile by run %s (attempt %s): using it, discarding "
             "attempt %s", stage, key, winner["run_id"], winner["attempt"], record["attempt"])
    return winner


def _discard(target: str | None, staging: pathlib.Path, context: Context, direct: bool) -> None:
    """Best-effort removal of an attempt's files and work folders (what a crash would leave
    is never read anyway)."""
    shutil.rmtree(staging, ignore_errors=True)
    for path in ([target] if target else []) + ([context.scratch_dir] if direct else []):
        try:
            storage.remove_tree(path)
        except Exception as error:  # noqa: BLE001  the store is still consistent
            log.warning("could not remove %s: %s", path, error)
