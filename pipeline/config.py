"""Load, override and validate a pipeline config (TOML file or dict) before any stage runs.

Sections: [pipeline] (name, root, seed, task), [beam] and [runtime] (where and how work runs; not
part of any cache key), [registry] (where blessed models go; handed to every stage whose
Config has a `registry` field), then one section per stage, validated by that stage's own
Config. The task ([pipeline] task, see edgepipe.contracts.tasks) is handed to every stage whose
Config has a `task` field, so it is part of their cache keys. Paths in a file are relative
to the file's folder; --root on the command line (and
the paths of a dict config) are relative to the working directory.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import sys
from typing import Any, Mapping

import pydantic

from edgepipe.contracts import tasks
from edgepipe.pipeline.sections import (SECTIONS, BeamSection, ForecastSection,  # noqa: F401
                                        KfpSection, PipelineSection, RuntimeSection,
                                        TaskResources)
from edgepipe.pipeline.stage import RegistrySettings, Runtime, StageConfig
from edgepipe.pipeline.spec import StageSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A config that cannot run; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    path: pathlib.Path  # the config file; for a dict config, "<dict>" in the working directory
    name: str
    root: pathlib.Path | str  # a local folder, or a URI (gs://BUCKET/PREFIX) as a str
    seed: int
    runtime: Runtime
    stages: dict[str, StageConfig]  # stage name -> its validated config
    registry: RegistrySettings | None = None
    kfp: KfpSection | None = None  # [kfp]: how `edgepipe compile` builds tasks
    task: str = tasks.CLASSIFICATION.name  # [pipeline] task


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=3' -> (['train', 'epochs'], 3). Values are TOML; bare words are strings."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=3")
    dotted, raw = text.split("=", 1)
    keys = _dotted_keys(dotted, f"--set {text!r}")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    except RecursionError:
        raise ConfigError(f"--set {dotted}=...: the value nests too deeply; a config value is "
                          "a number, a string, or a short list or table") from None
    return keys, value


def _dotted_keys(dotted: str, where: str) -> list[str]:
    keys = [part.strip() for part in dotted.split(".")]
    if len(keys) < 2 or not all(keys):
        raise ConfigError(f"{where}: expected section.key=value, e.g. train.epochs=3")
    return keys


def read(path: str | pathlib.Path) -> dict[str, Any]:
    """The raw TOML tables of a config file, or ConfigError naming the file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}. Pass the path of a TOML file, e.g. "
                          "configs/quickstart.toml.")
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}); save the config "
                          "as UTF-8.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:  # tomllib is recursive: arrays or tables nested ~1,000 deep
        raise ConfigError(f"{path}: the TOML nests arrays or tables too deeply to read; a "
                          "pipeline config needs a few levels") from None


def load(
    source: str | pathlib.Path | Mapping[str, Any],
    specs: dict[str, StageSpec],
    overrides: list[str] | Mapping[str, Any] = (),
    root: str | None = None,
    beam_options: list[str] = (),
    base_dir: str | pathlib.Path | None = None,
) -> PipelineConfig:
    """Read and validate everything, or raise ConfigError naming the file and the key.

    `source` is a TOML file or the same tables as a dict; `overrides` are "section.key=value"
    strings (values in TOML) or a {"section.key": value} dict. Relative paths of a dict are
    resolved against `base_dir` (default: the working directory).
    """
    if isinstance(source, Mapping):
        path = pathlib.Path("<dict>") if base_dir is None else pathlib.Path(base_dir, "<dict>")
        base_dir = pathlib.Path(base_dir or pathlib.Path.cwd()).resolve()
        data = copy.deepcopy(dict(source))
    else:
        path, data = pathlib.Path(source), read(source)
        base_dir = path.resolve().parent
    _apply_overrides(data, overrides, path)
    _apply_beam_options(data, beam_options)
    unknown = sorted(set(data) - set(SECTIONS) - set(specs))
    if unknown:
        raise ConfigError(f"{path}: unknown section [{unknown[0]}]. Expected sections: "
                          f"{', '.join(sorted({*SECTIONS, *specs}))}.")
    context = {"base_dir": base_dir}
    pipeline_section = _validate(path, "pipeline", PipelineSection, data.get("pipeline"), context)
    beam = _validate(path, "beam", BeamSection, data.get("beam", {}), context)
    runtime = _validate(path, "runtime", RuntimeSection, data.get("runtime", {}), context)
    registry = None
    if "registry" in data:
        registry = _validate(path, "registry", RegistrySettings, data["registry"], context)
        registry = registry.model_copy(
            update={"model_name": registry.model_name or pipeline_section.name})
    context["task"] = pipeline_section.task
    context["forecast"] = _forecast_section(path, data, pipeline_section.task, context)
    stages = _validate_stages(path, data, specs, registry, context)
    kfp = _validate(path, "kfp", KfpSection, data.get("kfp", {}), context)
    for stage in sorted(set(kfp.resources) - set(specs)):
        raise ConfigError(f"{path}: [kfp] resources.{stage}: unknown stage; the stages are "
                          f"{', '.join(specs)}.")
    return PipelineConfig(
        path=path,
        name=pipeline_section.name,
        root=_root(root, pipeline_section, base_dir),
        seed=pipeline_section.seed,
        task=pipeline_section.task,
        runtime=Runtime(
            beam_runner=beam.runner,
            beam_options=tuple((key, str(value)) for key, value in sorted(beam.options.items())),
            strategy=runtime.strategy,
            tpu_address=runtime.tpu_address,
        ),
        stages=stages,
        registry=registry,
        kfp=kfp,
    )


def _forecast_section(path, data: dict, task: str, context) -> ForecastSection | None:
    """[forecast], for task "forecasting" only (handed to the stages that take it)."""
    if task != tasks.FORECASTING.name:
        if "forecast" in data:
            raise ConfigError(f"{path}: [forecast] is used by [pipeline] task = \"forecasting\" "
                              f"only; the task is {task!r}.")
        return None
    forecast = dict(data.get("forecast", {}))
    backtest = data.get("evaluate", {}).get("backtest_windows")
    if backtest is not None:  # ingest cuts the windows: it reads the setting from [forecast]
        if forecast.get("backtest_windows", backtest) != backtest:
            raise ConfigError(f"{path}: [evaluate] backtest_windows = {backtest} but [forecast] "
                              f"backtest_windows = {forecast['backtest_windows']}; set it once, "
                              "in [evaluate].")
        forecast["backtest_windows"] = backtest
    return _validate(path, "forecast", ForecastSection, forecast, context)


def _apply_overrides(data: dict, overrides, path: pathlib.Path) -> None:
    pairs = (overrides.items() if isinstance(overrides, Mapping)
             else [parse_override(text) for text in overrides])
    for keys, value in pairs:
        if isinstance(keys, str):
            keys = _dotted_keys(keys, f"override {keys!r}")
        table = data
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {'.'.join(keys)}: {key} is not a table in {path}")
        table[keys[-1]] = value


def _apply_beam_options(data: dict, beam_options) -> None:
    for option in beam_options:
        key, separator, value = option.partition("=")
        key = key.strip().lstrip("-")
        if not separator or not key:
            raise ConfigError(f"--beam-option {option!r}: expected key=value, e.g. "
                              "direct_num_workers=2")
        data.setdefault("beam", {}).setdefault("options", {})[key] = value


def _root(root: str | None, pipeline_section: PipelineSection, base_dir: pathlib.Path):
    if root is not None:
        return root.rstrip("/") if "://" in root else _local_root(pathlib.Path(root), "--root")
    if pipeline_section.root:
        if "://" in pipeline_section.root:  # an object store: gs://BUCKET/PREFIX
            return pipeline_section.root.rstrip("/")
        return _local_root(base_dir / pipeline_section.root, "[pipeline] root")
    return _local_root(pathlib.Path("artifacts", pipeline_section.name), "the artifact root")


def _local_root(path: pathlib.Path, where: str) -> pathlib.Path:
    """The resolved root; ConfigError when it, or the nearest part of it that exists, is not
    a folder (a file, /dev/null): nothing could be written under it."""
    path = path.resolve()
    existing = next((part for part in (path, *path.parents) if part.exists()), None)
    if existing is not None and not existing.is_dir():
        what = "is" if existing == path else f"is under {existing}, which is"
        raise ConfigError(f"{where} {path} {what} not a folder; pass a folder (it is created if "
                          "missing) or gs://BUCKET/PREFIX.")
    return path


def _validate_stages(path, data: dict, specs: dict[str, StageSpec], registry,
                     context) -> dict[str, StageConfig]:
    """Each stage's section; an optional stage's only when the config has it. A stage whose
    spec lists other stages in `reads` gets their validated configs as fields of those names
    (tune reads [train] to check its search space), so those are validated first."""
    stages: dict[str, StageConfig] = {}
    present = [name for name, spec in specs.items() if name in data or not spec.optional]
    readers = [name for name in present if specs[name].reads]
    for name in [name for name in present if name not in readers] + readers:
        section = data.get(name, {})
        read = specs[name].reads
        if read and isinstance(section, dict):
            moved = [key for key in read if key in section]
            if moved:
                raise ConfigError(f"{path}: [{name}] {moved[0]}: unknown key; the [{moved[0]}] "
                                  "section is read from its own table.")
            section = {**section, **{key: stages[key] for key in read}}
        stages[name] = _validate_stage(path, name, specs[name].config, section, registry,
                                       context)
    return {name: stages[name] for name in specs if name in stages}


def _validate_stage(path, name: str, model: type[StageConfig], data, registry, context):
    """A stage's section; a stage whose Config has a `registry` field gets [registry], one
    with a `task` field gets [pipeline] task."""
    if "task" in model.model_fields:
        if "task" in (data or {}):
            raise ConfigError(f"{path}: [{name}] task: the task is set once, as [pipeline] "
                              "task, for every stage; move it there.")
        data = {**(data or {}), "task": context["task"]}
    if "forecast" in model.model_fields and context["forecast"] is not None:  # set once
        if "forecast" in (data or {}):
            raise ConfigError(f"{path}: [{name}] forecast: the forecasting settings are the "
                              "[forecast] section; move them there.")
        data = {**(data or {}), "forecast": context["forecast"]}
    if "registry" in model.model_fields:
        moved = sorted({"registry", "model_name"} & set(data or {}))
        if moved:
            raise ConfigError(
                f"{path}: [{name}] {moved[0]}: the registry is configured once, in the "
                "[registry] section (path, model_name), for evaluate, push and serve; move it "
                "there.")
        data = {**(data or {}), "registry": registry}
    return _validate(path, name, model, data, context)


def _validate(path, section, model: type[StageConfig], data, context) -> StageConfig:
    if data is None:
        raise ConfigError(f"{path}: missing section [{section}].")
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as error:
        problems = []
        for problem in error.errors():
            key = ".".join(str(part) for part in problem["loc"]) or "(section)"
            message = problem["msg"].removeprefix("Value error, ")  # our own messages say it
            if problem["type"] == "extra_forbidden":
                fields = ", ".join(sorted(model.model_fields))
                message = f"unknown key (expected one of: {fields})"
            elif "input" in problem and problem["type"] != "missing":
                message += f" (got {problem['input']!r})"
            problems.append(f"  [{section}] {key}: {message}")
        raise ConfigError(f"{path}: invalid config:\n" + "\n".join(problems)) from None
