"""The stage contract: what a stage module provides, what it receives, and how it signals.

A stage is a plain module (components/<stage>/stage.py), not a class to subclass. It defines:

    NAME: str                      stage name, also the artifact folder name
    VERSION: int                   bump to invalidate every cached result of the stage
    INPUTS: dict[str, str]         input name -> artifact kind it reads; the DAG wires each
                                   input to an upstream output, and `runner.plan` checks that
                                   the upstream stage declares that kind for it
    OPTIONAL_INPUTS: dict[str, str]  optional: inputs read only when the stage feeding them is
                                   in the pipeline (train's "tuning" from the optional tune
                                   stage); absent from `inputs` (and the cache key) otherwise
    OUTPUTS: dict[str, str]        output name -> artifact kind it writes
    Config: type[StageConfig]      frozen pydantic model of the stage's config section;
                                   every field can change results
    CODE: tuple[str, ...]          optional: modules or packages the stage loads by name
                                   rather than imports, whose source is part of the cache key
                                   (every file of the stage's own package and every edgepipe
                                   module those import always are; see pipeline/cache.py)
    def run(inputs, outputs, config, context) -> dict      JSON-able properties
    def fingerprint(config, inputs) -> str | None          optional: the state of the world
                                   outside the artifacts that the result depends on (the raw
                                   files ingest reads, the registry version evaluate compares
                                   with, a user model's source file); part of the cache key
                                   (None: nothing for this config, the key has no such part)
    COLLECTIVE: bool               optional: every worker of a multi-worker cluster runs the
                                   stage at once (training under MultiWorkerMirroredStrategy);
                                   otherwise one process per key runs it, others wait
    REMOTE_IO: bool                optional: the stage reads and writes only through
                                   edgepipe.contracts.storage and Beam FileSystems, so on an
                                   object-store root (gs://) it gets URIs (str) for its inputs,
                                   outputs and scratch_dir and writes straight into the bucket;
                                   otherwise (TensorFlow stages) it always gets local folders:
                                   the store copies its inputs and uploads its outputs
    OPTIONAL: bool                 optional: the stage is in the pipeline only when the config
                                   has its section (tune); without it the stage is left out of
                                   the DAG, its config is not validated, and the inputs it
                                   would feed must be OPTIONAL_INPUTS of their readers
    READS: tuple[str, ...]         optional: other stages whose validated config the stage's
                                   Config receives in a field of the same name (tune reads
                                   [train]); that field is not a key of the stage's section

`run` reads only `inputs` (committed artifacts) and writes only into the empty directories in
`outputs`. The runner writes the manifests and commits the directories; a stage never
commits anything itself. Stage modules import TensorFlow and Beam inside `run`, so a fully
cached pipeline never pays for importing them.

Signals from a stage to the runner (nothing else in `run`'s result changes what runs next):

    properties["halt"]: str        a gate stopped the pipeline: the stage's artifact is
                                   committed (it explains the stop), the run ends with status
                                   "halted" and the message, and every later stage is skipped
    properties["resumed"]: bool    the stage continued from work it kept in
                                   `context.scratch_dir` (a training checkpoint) instead of
                                   starting over; shown in the run summary
    raise WorkerFinished           a non-chief worker of multi-worker training finished its
                                   share: nothing is committed by this process (the chief
                                   commits), the run ends with status "worker_finished", exit 0
    raise any other exception      the stage failed: nothing is committed, the run ends with
                                   status "failed", later stages are skipped
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import stat
from typing import Annotated, Any

import pydantic

from edgepipe.contracts import storage

class StageConfig(pydantic.BaseModel):
    """Base of every stage config: frozen, and unknown keys are errors, not ignored."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class WorkerFinished(SystemExit):
    """Raised by a stage on a non-chief worker of multi-worker training once its share is
    done: the chief commits the artifact, so this process stops the pipeline cleanly (exit
    status 0) without committing anything."""

    def __init__(self, message: str):
        super().__init__(0)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A committed artifact: a directory with a manifest.json the runner wrote last. `path`
    is a local folder, or a URI (str) for an artifact on an object store."""

    path: pathlib.Path | str
    kind: str
    key: str
    properties: dict[str, Any]
    run_id: str = ""  # the run that committed it

    @classmethod
    def load(cls, path: str | pathlib.Path) -> "Artifact":
        path = os.fspath(path) if storage.is_remote(path) else pathlib.Path(path)
        try:
            manifest = json.loads(storage.read_text(storage.join(path, "manifest.json")))
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(
                f"{path} is not a committed artifact: it has no manifest.json "
                "(an artifact is only valid once the runner has written its manifest)."
            ) from None
        return cls(path, manifest["kind"], manifest["key"], manifest.get("properties", {}),
                   manifest.get("run_id", ""))


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Settings that decide where and how work runs but never what it computes.

    They are not part of any cache key: the same config on a laptop and on Dataflow gives
    the same artifacts.
    """

    beam_runner: str = "DirectRunner"
    beam_options: tuple[tuple[str, str], ...] = ()
    strategy: str = "auto"  # auto | default | one_device | mirrored | multi_worker | tpu
    tpu_address: str = ""

    def worker_task(self) -> str:
        """This process's task in a multi-worker cluster ("chief0", "worker1"), from TF_CONFIG;
        "" outside one."""
        if self.strategy != "multi_worker":
            return ""
        try:
            task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
            return f"{task['type']}{task['index']}"
        except (ValueError, KeyError, TypeError, AttributeError):
            return ""  # the train stage reports a bad TF_CONFIG itself

    def beam_pipeline_options(self) -> list[str]:
        """Beam PipelineOptions flags, e.g. ['--runner=DirectRunner', '--direct_num_workers=2']."""
        flags = [f"--runner={self.beam_runner}"]
        flags += [f"--{key}={value}" for key, value in self.beam_options]
        return flags


@dataclasses.dataclass(frozen=True)
class Context:
    """What the runner hands a stage besides its inputs and outputs."""

    pipeline_name: str
    run_id: str
    seed: int
    runtime: Runtime
    scratch_dir: pathlib.Path | str  # survives a crash, keyed by the cache key; removed on
    # commit. A URI (str) only for a REMOTE_IO stage on an object-store root.
    log: logging.Logger = dataclasses.field(default_factory=lambda: logging.getLogger("edgepipe"))


def check_file_or_folder(path: str | os.PathLike) -> None:
    """ValueError for a path that exists but is neither a regular file nor a folder (a
    device such as /dev/zero, a pipe, a socket): reading it would never end, or never start."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing: the caller says what it expected
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{os.fspath(path)} is not a regular file or a folder (a device, pipe "
                         "or socket, whose reading might never end); point the config at a "
                         "file or folder of data")


def _resolve_existing_path(value: str, info: pydantic.ValidationInfo) -> str:
    """Resolve a path against the config file's folder and check that it exists.

    URIs with a scheme (gs://, s3://) are passed through: they are checked when read.
    """
    if "://" in value:
        return value
    base = (info.context or {}).get("base_dir", ".")
    path = (pathlib.Path(base) / value).resolve()
    if not path.exists():
        raise ValueError(f"path does not exist: {path}")
    check_file_or_folder(path)
    return str(path)


# A config field holding a file or folder that must exist, written relative to the config file.
ExistingPath = Annotated[str, pydantic.AfterValidator(_resolve_existing_path)]


def _resolve_path(value: str, info: pydantic.ValidationInfo) -> str:
    """Resolve a path against the config file's folder; it need not exist yet."""
    if "://" in value:
        return value
    base = (info.context or {}).get("base_dir", ".")
    return str((pathlib.Path(base) / value).resolve())


# A config field naming a place to write (a registry, say), relative to the config file.
OutputPath = Annotated[str, pydantic.AfterValidator(_resolve_path)]


class RegistrySettings(StageConfig):
    """The pipeline's `[registry]`: where blessed models are pushed and who they are compared
    with. The config loader hands it to every stage whose Config has a `registry` field
    (evaluate's relative gate, push); `edgepipe serve CONFIG` serves it."""

    path: OutputPath = pydantic.Field(
        description="Registry folder (relative to the config file) or gs:// URI; versions go "
        "to <path>/<model_name>/<version>/.")
    model_name: str = pydantic.Field(
        "", pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*)?$",
        description="Name of the model in the registry (its folder, and its URL in the "
        "service); empty means the pipeline's name.")
