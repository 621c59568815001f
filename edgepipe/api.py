"""The Python API: what `edgepipe run` does, callable from a notebook or a script.

    import edgepipe
    result = edgepipe.run("configs/quickstart.toml", overrides={"train.epochs": 2},
                          root="runs/notebook")
    result.metrics["evaluate"]["accuracy"], result.tflite_path, result.report_path

The CLI (edgepipe/cli.py) is a thin layer over these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
import sys
from typing import Any, Iterator, Mapping

from edgepipe.contracts import storage
from edgepipe.pipeline import config as config_module
from edgepipe.pipeline import dag, runner
from edgepipe.pipeline.store import Store

ConfigError = config_module.ConfigError
StageFailed = runner.StageFailed
StorageError = storage.StorageError  # an artifact root or registry URI that cannot be used


def _path(text: str) -> pathlib.Path | str:
    """A local folder as a Path; an object-store URI (gs://...) stays a str."""
    return text if storage.is_remote(text) else pathlib.Path(text)


@dataclasses.dataclass(frozen=True)
class Result:
    """A finished run: its summary (the same dict as <root>/runs/latest.json) and shortcuts."""

    summary: dict[str, Any]

    @property
    def status(self) -> str:
        """succeeded, halted (a gate stopped the run) or worker_finished."""
        return self.summary["status"]

    @property
    def run_id(self) -> str:
        return self.summary["run_id"]

    @property
    def root(self) -> pathlib.Path | str:
        """The artifact root: a local folder, or the gs:// URI (a str)."""
        return _path(self.summary["root"])

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """{stage name: the metrics it reported}, for the stages of this run."""
        return {stage["name"]: stage.get("metrics", {}) for stage in self.summary["stages"]}

    @property
    def artifacts(self) -> dict[str, dict[str, pathlib.Path | str]]:
        """{stage name: {output name: committed artifact folder (a URI on an object store)}}."""
        return {stage["name"]: {output: _path(path)
                                for output, path in stage.get("artifacts", {}).items()}
                for stage in self.summary["stages"]}

    @property
    def tflite_path(self) -> pathlib.Path | None:
        """The .tflite file of the variant the quantize stage chose to deploy."""
        deployable = self.metrics.get("quantize", {}).get("deployable")
        folder = self.artifacts.get("quantize", {}).get("tflite")
        if not (deployable and folder):
            return None
        return storage.join(folder, deployable["path"]) if isinstance(folder, str) else (
            folder / deployable["path"])

    @property
    def report_path(self) -> pathlib.Path | None:
        folder = self.artifacts.get("report", {}).get("report")
        if not folder:
            return None
        return storage.join(folder, "report.html") if isinstance(folder, str) else (
            folder / "report.html")

    @property
    def blessed(self) -> bool | None:
        return self.metrics.get("evaluate", {}).get("blessed")


def load_config(config: str | pathlib.Path | Mapping[str, Any],
                overrides: Mapping[str, Any] | list[str] = (), root: str | None = None,
                beam_options: list[str] = ()) -> config_module.PipelineConfig:
    """A validated pipeline config; raises ConfigError naming the file and the key.

    `config` is a TOML file or the same tables as a dict; `overrides` maps dotted keys to
    values ({"train.epochs": 2}) or lists "section.key=value" strings as on the command line.
    """
    return config_module.load(config, dag.specs(), overrides=overrides or (),
                              root=root, beam_options=beam_options)


def run(config: str | pathlib.Path | Mapping[str, Any] | config_module.PipelineConfig,
        overrides: Mapping[str, Any] | list[str] = (), root: str | None = None,
        stages: list[str] | None = None, no_cache: bool = False,
        beam_options: list[str] = (), progress: bool = True) -> Result:
    """Run the pipeline (or exactly `stages`, from committed inputs) and return the Result.

    Raises ConfigError for a config that cannot run (nothing ran) and StageFailed when a
    stage failed (the run summary is written first). With `progress`, the stage and
    training progress are logged to stderr unless logging is already configured.
    """
    if not isinstance(config, config_module.PipelineConfig):
        config = load_config(config, overrides, root, beam_options)
    with _progress_logging(progress):
        return Result(runner.run(config, no_cache=no_cache, stages=stages))


def status(config: str | pathlib.Path | Mapping[str, Any] | config_module.PipelineConfig,
           overrides: Mapping[str, Any] | list[str] = (),
           root: str | None = None) -> list[dict[str, Any]]:
    """Each stage's cache key and its committed record (None: it would run)."""
    if not isinstance(config, config_module.PipelineConfig):
        config = load_config(config, overrides, root)
    return [{"stage": step.node.stage, "key": step.key, "record": step.record}
            for step in runner.plan(config)]


def check_storage(uri: str | pathlib.Path) -> None:
    """StorageError naming the URI and what to install or set when an object-store URI
    (gs://, s3://) cannot be used: no file system for its scheme, no credentials, no such
    bucket, no answer. A local path passes."""
    storage.check_reachable(uri)


def latest_run(root: str | pathlib.Path) -> dict[str, Any] | None:
    """The newest run summary under an artifact root, or None."""
    return Store(root).latest_run()


@contextlib.contextmanager
def _progress_logging(enabled: bool) -> Iterator[None]:
    """Show edgepipe's INFO progress on stderr for the call, if nobody configured logging."""
    logger = logging.getLogger("edgepipe")
    if not enabled or logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S"))
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    # Not also through the root logger, which TensorFlow's absl may configure meanwhile.
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = previous
