"""The store on an object store (a gs:// or s3:// artifact root), where there is no rename.

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
from edgepipe.pipeline.store import MANIFEST, Attempt, Store

log = logging.getLogger("edgepipe")


class ObjectStore(Store):
    """A gs:// or s3:// root: commit by creating the key's manifest exclusively."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.fspath(root).rstrip("/")
        # This machine's work for the root (locks, staging, local copies) in the cache.
        self.local = storage.cache_dir("roots", hashlib.sha256(self.root.encode()).hexdigest()[:16])

    def stage_dir(self, stage: str, key: str) -> str:
        return storage.join(self.root, "artifacts", stage, key)

    def scratch_dir(self, stage: str, key: str) -> pathlib.Path:
        """In the bucket through Cloud Storage FUSE when /gcs/<bucket> is mounted
        (EDGEPIPE_GCS_FUSE_ROOT names another mount point), else in this machine's cache."""
        if storage.scheme(self.root) == "gs":
            bucket, _, prefix = self.root.split("://", 1)[1].partition("/")
            mount = pathlib.Path(os.environ.get("EDGEPIPE_GCS_FUSE_ROOT", "/gcs"), bucket)
            if mount.is_dir():
                return mount.joinpath(*filter(None, prefix.split("/")), "scratch",
                                      f"{stage}-{key}")
        return self.local / "scratch" / f"{stage}-{key}"

    def output_path(self, stage: str, key: str, output: str) -> str:
        return storage.join(self.stage_dir(stage, key), output)

    def output_paths(self, stage: str, key: str, record: dict[str, Any]) -> dict[str, str]:
        attempt = self.attempt_dir(stage, key, record["attempt"])
        return {name: storage.join(attempt, name) for name in record["outputs"]}

    def attempt_dir(self, stage: str, key: str, attempt: str) -> str:
        return storage.join(self.stage_dir(stage, key), "attempts", attempt)

    def write_run_summary(self, summary: dict[str, Any]) -> None:
        for name in (f"{summary['run_id']}.json", "latest.json"):  # one upload each: atomic
            storage.write_text(storage.join(self.root, "runs", name),
                               json.dumps(summary, indent=2) + "\n")

    def _begin(self, spec, key, inputs, context) -> Attempt:
        """A remote_io stage writes into the attempt's prefix; any other gets local copies of
        its inputs (kept in the cache: committed attempts never change) and local folders."""
        name = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        target = self.attempt_dir(spec.name, key, name)
        if spec.remote_io:
            outputs = {output: storage.join(target, output) for output in spec.outputs}
            context = dataclasses.replace(context, scratch_dir=storage.join(
                self.root, "scratch", f"{spec.name}-{key}", name))
            return Attempt(inputs, outputs, context, None, target, name)
        staging = self.local / "staging" / f"{spec.name}-{key}-{name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        outputs = {output: staging / output for output in spec.outputs}
        for path in outputs.values():
            path.mkdir(parents=True)
        pathlib.Path(context.scratch_dir).mkdir(parents=True, exist_ok=True)
        local = {input_name: dataclasses.replace(artifact,
                                                 path=storage.local_copy(artifact.path))
                 for input_name, artifact in inputs.items()}
        return Attempt(local, outputs, context, staging, target, name)

    def _commit(self, attempt, spec, key, manifests, replace) -> dict[str, Any]:
        """Upload the attempt's files and its outputs' manifests, then create the key's
        manifest.json unless another attempt did first. With `replace` (--no-cache) the
        manifest is overwritten (one upload, atomic for readers) and the attempt it named is
        deleted."""
        if attempt.staging is not None:
            storage.upload_tree(attempt.staging, attempt.target)
        for name, manifest in manifests.items():
            if name:
                storage.write_text(storage.join(attempt.target, name, MANIFEST),
                                   json.dumps(manifest, indent=2) + "\n")
        record = {**manifests[""], "attempt": attempt.name}
        manifest = storage.join(self.stage_dir(spec.name, key), MANIFEST)
        data = (json.dumps(record, indent=2) + "\n").encode()
        if replace:
            previous = self.lookup(spec.name, key)
            storage.write_bytes(manifest, data)
            if previous and previous.get("attempt") not in (None, attempt.name):
                storage.remove_tree(self.attempt_dir(spec.name, key, previous["attempt"]))
            return record
        if storage.create_exclusive(manifest, data):
            return record
        winner = self.lookup(spec.name, key)
        log.info("%s key %s was committed meanwhile by run %s (attempt %s): using it, "
                 "discarding attempt %s", spec.name, key, winner["run_id"], winner["attempt"],
                 attempt.name)
        return winner

    def _discard(self, attempt, committed) -> None:
        """Best-effort removal of the attempt's files (unless committed) and work folders
        (what a crash would leave is never read anyway)."""
        if attempt.staging is not None:
            shutil.rmtree(attempt.staging, ignore_errors=True)
        remote = [attempt.target] if committed is None or committed["attempt"] != attempt.name \
            else []
        if attempt.staging is None:  # a remote_io stage's scratch is in the bucket
            remote.append(attempt.context.scratch_dir)
        elif committed is not None:
            shutil.rmtree(attempt.context.scratch_dir, ignore_errors=True)
        for path in remote:
            try:
                storage.remove_tree(path)
            except Exception as error:  # noqa: BLE001  the store is still consistent
                log.warning("could not remove %s: %s", path, error)
