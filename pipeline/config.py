"""Load, override and validate a pipeline config (TOML) before any stage runs.

Sections: [pipeline] (name, root, seed), [beam] and [runtime] (where and how work runs; not
part of any cache key), then one section per stage, validated by that stage's own Config.
Paths in the file are relative to the file's folder; --root on the command line is relative
to the working directory.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from types import ModuleType
from typing import Any

import pydantic

from pipeline.stage import Runtime, StageConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A config that cannot run; the message names the file and the key."""


class PipelineSection(StageConfig):
    name: str = pydantic.Field(min_length=1, description="pipeline name, shown in reports")
    root: str = pydantic.Field("", description="artifact root; default artifacts/<name>")
    seed: int = pydantic.Field(0, description="seeds every random choice of every stage")


class BeamSection(StageConfig):
    runner: str = "DirectRunner"
    # Any Beam PipelineOptions flag without its dashes, e.g. direct_num_workers = 2.
    options: dict[str, str | int | float | bool] = {}


class RuntimeSection(StageConfig):
    strategy: str = pydantic.Field(
        "auto", pattern="^(auto|default|one_device|mirrored|multi_worker|tpu)$"
    )
    tpu_address: str = ""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    path: pathlib.Path
    name: str
    root: pathlib.Path
    seed: int
    runtime: Runtime
    stages: dict[str, StageConfig]  # stage name -> its validated config


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=3' -> (['train', 'epochs'], 3). Values are TOML; bare words are strings."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=3")
    dotted, raw = text.split("=", 1)
    keys = [part.strip() for part in dotted.split(".")]
    if len(keys) < 2 or not all(keys):
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=3")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    return keys, value


def load(
    path: str | pathlib.Path,
    stage_modules: dict[str, ModuleType],
    overrides: list[str] = (),
    root: str | None = None,
    beam_options: list[str] = (),
) -> PipelineConfig:
    """Read and validate everything, or raise ConfigError naming the file and the key."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}. Pass the path of a TOML file, e.g. configs/quickstart.toml.")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    for override in overrides:
        keys, value = parse_override(override)
        table = data
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {override!r}: {key} is not a table in {path}")
        table[keys[-1]] = value
    for option in beam_options:
        if "=" not in option:
            raise ConfigError(f"--beam-option {option!r}: expected key=value, e.g. direct_num_workers=2")
        key, value = option.split("=", 1)
        data.setdefault("beam", {}).setdefault("options", {})[key.lstrip("-")] = value

    known = {"pipeline", "beam", "runtime", *stage_modules}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown section [{unknown[0]}]. Expected sections: {', '.join(sorted(known))}."
        )
    context = {"base_dir": path.resolve().parent}
    pipeline_section = _validate(path, "pipeline", PipelineSection, data.get("pipeline"), context)
    beam = _validate(path, "beam", BeamSection, data.get("beam", {}), context)
    runtime = _validate(path, "runtime", RuntimeSection, data.get("runtime", {}), context)
    stages = {
        name: _validate(path, name, module.Config, data.get(name, {}), context)
        for name, module in stage_modules.items()
    }
    if root is not None:
        root_path = pathlib.Path(root).resolve()
    elif pipeline_section.root:
        root_path = (path.resolve().parent / pipeline_section.root).resolve()
    else:
        root_path = pathlib.Path("artifacts", pipeline_section.name).resolve()
    return PipelineConfig(
        path=path,
        name=pipeline_section.name,
        root=root_path,
        seed=pipeline_section.seed,
        runtime=Runtime(
            beam_runner=beam.runner,
            beam_options=tuple((key, str(value)) for key, value in sorted(beam.options.items())),
            strategy=runtime.strategy,
            tpu_address=runtime.tpu_address,
        ),
        stages=stages,
    )


def _validate(path, section, model: type[StageConfig], data, context) -> StageConfig:
    if data is None:
        raise ConfigError(f"{path}: missing section [{section}].")
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as error:
        problems = []
        for problem in error.errors():
            key = ".".join(str(part) for part in problem["loc"]) or "(section)"
            message = problem["msg"]
            if problem["type"] == "extra_forbidden":
                fields = ", ".join(sorted(model.model_fields))
                message = f"unknown key (expected one of: {fields})"
            elif "input" in problem and problem["type"] != "missing":
                message += f" (got {problem['input']!r})"
            problems.append(f"  [{section}] {key}: {message}")
        raise ConfigError(f"{path}: invalid config:\n" + "\n".join(problems)) from None
