"""The sections every pipeline config has besides its stages: [pipeline], [beam], [runtime],
[registry] and [kfp], each a frozen pydantic model (pipeline/config.py loads and checks them)."""

from __future__ import annotations

import pydantic

from edgepipe.contracts import tasks
from edgepipe.pipeline.stage import RegistrySettings, StageConfig


class PipelineSection(StageConfig):
    name: str = pydantic.Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="pipeline name, shown in reports, and the registry's default model name "
        "(a folder): letters, digits, '.', '_' and '-', starting with a letter or digit")
    root: str = pydantic.Field("", description="artifact root (a folder, or gs://BUCKET/PREFIX); "
                               "default artifacts/<name>")
    seed: int = pydantic.Field(0, ge=0, le=2**32 - 1,
                               description="seeds every random choice of every stage")
    task: str = pydantic.Field(
        tasks.CLASSIFICATION.name, description="what the model learns: "
        + ", ".join(f'"{name}"' for name in tasks.NAMES) + " (edgepipe.contracts.tasks)")

    @pydantic.field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        tasks.get(task)
        return task


class BeamSection(StageConfig):
    runner: str = pydantic.Field("DirectRunner", description="Beam runner of the Beam stages")
    options: dict[str, str | int | float | bool] = pydantic.Field(
        {}, description="any Beam PipelineOptions flag without its dashes, e.g. "
        "direct_num_workers = 2")


class RuntimeSection(StageConfig):
    strategy: str = pydantic.Field(
        "auto", pattern="^(auto|default|one_device|mirrored|multi_worker|tpu)$",
        description="tf.distribute strategy of training")
    tpu_address: str = pydantic.Field("", description="TPU name or grpc:// address")


class TaskResources(StageConfig):
    cpu: str | int | float = pydantic.Field("", description='CPU limit, e.g. 4 or "500m"')
    memory: str = pydantic.Field("", description='memory limit of the task, e.g. "16G"')
    accelerator_type: str = pydantic.Field(
        "", description="accelerator, e.g. NVIDIA_TESLA_T4 (Vertex AI) or nvidia.com/gpu")
    accelerator_count: int = pydantic.Field(0, ge=0, description="accelerators of the task")


class KfpSection(StageConfig):
    """`edgepipe compile` (Kubeflow / Vertex AI Pipelines); never part of a cache key."""

    image: str = pydantic.Field("edgepipe:latest", description="image of every task")
    config_dir: str = pydantic.Field(
        "/opt/edgepipe/configs", description="folder the task resolves relative paths against")
    resources: dict[str, TaskResources] = pydantic.Field({}, description="per stage")
    beam_runner: str = pydantic.Field("", description="Beam runner of the Beam tasks")
    beam_options: dict[str, str | int | float | bool] = pydantic.Field(
        {}, description="Beam options of the Beam tasks")
    retries: int = pydantic.Field(0, ge=0, le=10, description="retries of a failed task")
    train_replicas: int = pydantic.Field(1, ge=1, description="Vertex: train replicas")
    train_machine_type: str = pydantic.Field("n1-standard-8", description="Vertex machine")
    location: str = pydantic.Field("us-central1", description="Vertex region of the train job")


class ForecastSection(StageConfig):
    """[forecast]: what a forecasting task predicts from what (task "forecasting"). Handed to
    every stage whose Config has a `forecast` field (ingest, which cuts the windows and
    records these settings in the Examples artifact for the later stages)."""

    horizon: int = pydantic.Field(
        1, ge=1, le=10_000, description="steps forecast at once (one model output per step); "
        "also the length of each series' test and validation windows")
    lookback: int = pydantic.Field(
        24, ge=1, le=100_000, description="past steps the model reads; a shorter series is "
        "padded before its first value (the model's mask channel says which steps are real)")
    seasonality: int = pydantic.Field(
        1, ge=1, le=100_000, description="the seasonal period in steps (12: monthly data with "
        "a yearly cycle; 1: none): seasonal naive and MASE's in-sample scale use it")
    min_history: int | None = pydantic.Field(
        None, ge=1, description="a series with fewer points (after repairs) is quarantined by "
        "name; default and minimum 3 x horizon + 1 (one train, one validation and one test "
        "window); with backtest_windows N, (N + 2) x horizon + 1")
    backtest_windows: int = pydantic.Field(
        1, ge=1, le=1_000, description="set from [evaluate] backtest_windows: each series' "
        "last N x horizon points are N test windows (rolling origins, a horizon apart), the "
        "horizon before the earliest its validation window, training uses what precedes")
    quantiles: tuple[float, ...] = pydantic.Field(
        (), description="quantiles the model also forecasts, e.g. [0.1, 0.5, 0.9] (pinball "
        "loss; intervals between the outer ones); must include 0.5, the point forecast")

    @pydantic.field_validator("quantiles")
    @classmethod
    def _median_included(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if values and (0.5 not in values or any(not 0 < value < 1 for value in values)):
            raise ValueError(f"quantiles {list(values)}: each in (0, 1), and 0.5 among them "
                             "(the point forecast the metrics score), e.g. [0.1, 0.5, 0.9].")
        return tuple(sorted(set(values)))

    @property
    def required_history(self) -> int:
        return max(self.min_history or 0, (self.backtest_windows + 2) * self.horizon + 1)


# Sections every pipeline has besides its stages, with their models.
SECTIONS: dict[str, type[StageConfig]] = {
    "pipeline": PipelineSection, "beam": BeamSection, "runtime": RuntimeSection,
    "registry": RegistrySettings, "kfp": KfpSection, "forecast": ForecastSection,
}
