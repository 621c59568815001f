"""What a stage is given, besides its declaration and result (StageSpec and StageResult are in
pipeline/spec.py): the base of every stage config (StageConfig), a committed artifact
(Artifact), the runtime settings that never change results (Runtime), the Context with what
the runner knows of the upstream stages (UpstreamStage), WorkerFinished, and the config field
types that name files (ExistingPath, OutputPath) and the registry (RegistrySettings).
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
class UpstreamStage:
    """What the runner knows of a stage upstream of the one it runs: its committed record."""

    stage: str
    key: str
    run_id: str  # the run that computed it
    created: str
    seconds: float  # what computing it took, in that run
    resumed: bool  # it continued from a checkpoint when it was computed
    cached: bool  # computed by another run than the one running now
    properties: dict[str, Any]

    @classmethod
    def of(cls, record: dict[str, Any], run_id: str) -> "UpstreamStage":
        """From a stage record (the store's manifest), seen from run `run_id`."""
        return cls(record["stage"], record["key"], record.get("run_id", ""),
                   record.get("created", ""), float(record.get("seconds", 0.0)),
                   bool(record.get("resumed", False)), record.get("run_id") != run_id,
                   dict(record.get("properties", {})))


@dataclasses.dataclass(frozen=True)
class Context:
    """What the runner hands a stage besides its inputs and outputs."""

    pipeline_name: str
    run_id: str
    seed: int
    runtime: Runtime
    scratch_dir: pathlib.Path | str  # survives a crash, keyed by the cache key; removed on
    # commit. A URI (str) only for a remote_io stage on an object-store root.
    log: logging.Logger = dataclasses.field(default_factory=lambda: logging.getLogger("edgepipe"))
    # Every stage upstream of this one, in DAG order: a stage learns about them here, never
    # by reading the store's manifests (which an object store keeps elsewhere).
    upstream: dict[str, UpstreamStage] = dataclasses.field(default_factory=dict)


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
