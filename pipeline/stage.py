"""The stage contract: what every module in components/ provides and receives.

A stage is a plain module, not a class to subclass. It defines:

    NAME: str                      stage name, also the artifact folder name
    VERSION: int                   bump to invalidate every cached result of the stage
    INPUTS: dict[str, str]         input name -> artifact kind it expects
    OUTPUTS: dict[str, str]        output name -> artifact kind it writes
    Config: type[StageConfig]      frozen pydantic model; every field can change results
    CODE: tuple[str, ...]          optional: extra modules or packages whose source is part
                                   of the cache key (the stage module itself always is)
    CODE_FILES: tuple[str, ...]    optional: other files beside the module (templates) whose
                                   content is part of the cache key
    def run(inputs, outputs, config, context) -> dict   (JSON-able properties)
    def fingerprint(config) -> str optional: hash of the raw data a source stage reads

`run` reads only `inputs` (committed artifacts) and writes only into the empty directories in
`outputs`. The runner writes the manifests and commits the directories atomically. Stage
modules import TensorFlow and Beam inside `run`, so a fully cached pipeline never pays for
importing them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Annotated, Any

import pydantic


class StageConfig(pydantic.BaseModel):
    """Base of every stage config: frozen, and unknown keys are errors, not ignored."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A committed artifact: a directory with a manifest.json the runner wrote last."""

    path: pathlib.Path
    kind: str
    key: str
    properties: dict[str, Any]

    @classmethod
    def load(cls, path: str | pathlib.Path) -> "Artifact":
        path = pathlib.Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{path} is not a committed artifact: it has no manifest.json "
                "(an artifact is only valid once the runner has written its manifest)."
            )
        manifest = json.loads(manifest_path.read_text())
        return cls(path, manifest["kind"], manifest["key"], manifest.get("properties", {}))


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
    scratch_dir: pathlib.Path  # survives a crash, keyed by the cache key; removed on commit
    log: logging.Logger = dataclasses.field(default_factory=lambda: logging.getLogger("edgepipe"))


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
