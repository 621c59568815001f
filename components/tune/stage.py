"""Tune stage: search hyperparameters of the train stage on the validation split (Optuna).

Optional: it is in the pipeline only when the config has a [tune] section, between statistics
and train; train then trains with the best parameters found (its optional input `tuning`).

    [tune]
    trials = 20                 # budget in trials
    minutes = 30                # optional budget in trial time; no trial starts after it
    metric = "val_accuracy"     # or "val_loss"
    epochs_per_trial = 3        # default: [train] epochs

    [tune.space]                # dotted [train] keys -> a distribution (see space.py)
    "learning_rate" = {log_uniform = [1e-4, 1e-2]}
    "model_options.dropout" = {uniform = [0.1, 0.5]}

Each trial is the [train] config with the trial's values, trained for epochs_per_trial epochs
(trial.py); trials worse than the median at the same epoch are pruned; the sampler is seeded
by [pipeline] seed; the Optuna study is kept in the stage's scratch folder so a killed search
resumes without repeating finished trials (search.py). The artifact (Tuning: tuning.json)
holds every trial and the best parameters. The [train] section is part of the cache key
(except `epochs` when epochs_per_trial is set), and so is a user model's source file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import pydantic

from edgepipe.components.shared import examples_io, model_builder, tuned_config
from edgepipe.components.tune import space as space_module
from edgepipe.contracts import artifacts
from edgepipe.pipeline.stage import StageConfig
from edgepipe.pipeline.spec import StageResult, StageSpec



class Config(StageConfig):
    # The [train] section (handed over by the config loader, not written under [tune]): what
    # a trial trains and what the space's keys must name. Not in the config part of the key;
    # `fingerprint` adds what of it matters.
    train: Any = pydantic.Field(None, exclude=True)
    # Budget in trials: the search stops once this many have finished (pruned ones count).
    trials: int = pydantic.Field(20, ge=1, le=100_000)
    # Optional budget in minutes of trial time; no new trial starts once it is spent.
    minutes: float | None = pydantic.Field(None, gt=0, le=1_000_000)
    # What the search optimises: validation accuracy (maximised; classification's default),
    # MAE (minimised; regression's default) or loss (minimised).
    metric: Literal["val_accuracy", "val_loss", "val_mae"] = "val_accuracy"
    # Epochs each trial trains; default [train] epochs.
    epochs_per_trial: int | None = pydantic.Field(None, ge=1, le=100_000)
    # Dotted [train] keys -> {log_uniform|uniform|int = [min, max]} or {choice = [...]}.
    space: dict[str, Any] = {}

    @pydantic.model_validator(mode="before")
    @classmethod
    def _task_metric(cls, data):
        """The default metric is the task's validation metric (task_heads.VALIDATION_METRIC);
        one the task's model does not report is an error."""
        from edgepipe.components.shared.task_heads import VALIDATION_METRIC

        train = data.get("train") if isinstance(data, dict) else None
        task = getattr(train, "task", "classification")
        if isinstance(data, dict) and "metric" not in data:
            return {**data, "metric": VALIDATION_METRIC[task][0]}
        reported = {VALIDATION_METRIC[task][0], "val_loss"}
        if isinstance(data, dict) and data["metric"] not in reported:
            raise ValueError(f"metric = {data['metric']!r}: a {task} model reports "
                             f"{sorted(reported)}; choose one of them.")
        return data

    @pydantic.field_validator("space")
    @classmethod
    def _searchable(cls, space: dict[str, Any], info: pydantic.ValidationInfo):
        train = info.data.get("train")
        if not isinstance(train, StageConfig):
            raise ValueError("the tune stage needs the validated [train] section (the config "
                             "loader hands it over); validate a whole pipeline config.")
        space_module.check(space, train)
        return space


def fingerprint(config: Config, inputs) -> str:
    """What of [train] the search depends on, and a user model's source file."""
    from edgepipe import models

    train = config.train.model_dump(mode="json",
                                    exclude={"epochs"} if config.epochs_per_trial else set())
    if models.user.is_reference(config.train.model):
        train["model_sha256"] = models.user.fingerprint(config.train.model)
    return hashlib.sha256(json.dumps(train, sort_keys=True).encode()).hexdigest()


def run(inputs, outputs, config: Config, context) -> StageResult:
    import tensorflow as tf

    from edgepipe.components.shared import input_spec
    from edgepipe.components.tune import search, trial
    from edgepipe.models.keras import keras

    examples, statistics = inputs["examples"].path, inputs["statistics"].path
    if not examples_io.split_size(examples, "validation"):
        raise ValueError(f"{examples}: the validation split is empty, and the tune stage "
                         "compares trials on it; set [ingest] validation_fraction > 0.")
    train = config.train
    spec = input_spec.input_spec(examples, statistics, train.sequence_length, train.padding,
                                 train.input_color)
    spec.update(input_spec.label_spec(examples, statistics, train.task, train.model))
    num_classes = len(spec["class_names"]) or len(spec["target_names"])
    model_builder.check(train.model, train.model_options, spec["input_feature"])
    model_builder.preflight(tf, keras, train, spec, num_classes)
    epochs = config.epochs_per_trial or train.epochs
    context.log.info("searching %d trials of %d epochs over %s", config.trials, epochs,
                     sorted(config.space))

    def objective(params: dict[str, Any], report):
        trial_config = tuned_config.apply(train, params, "trial parameters")
        return trial.train(tf, keras, trial_config, examples, statistics, num_classes, epochs,
                           context.seed, config.metric, report)

    result = search.search(config, objective, context.scratch_dir, context.seed, context.log)
    artifacts.write_tuning(outputs["tuning"], {**result, "epochs_per_trial": epochs})
    context.log.info("best trial %d: %s %.4f with %s", result["best_trial"], config.metric,
                     result["best_value"], result["best_params"])
    return StageResult({
        "trials": len(result["trials"]),
        "pruned": sum(record["pruned"] for record in result["trials"]),
        "best_trial": result["best_trial"], "best_params": result["best_params"],
        "best_value": result["best_value"], "metric": config.metric,
        "epochs_per_trial": epochs,
    }, resumed=result["resumed"])


SPEC = StageSpec(
    name="tune", version=1, config=Config, run=run, fingerprint=fingerprint,
    inputs={"examples": "Examples", "statistics": "Statistics"}, outputs={"tuning": "Tuning"},
    optional=True,  # only in a pipeline whose config has a [tune] section
    reads=("train",),  # the config loader hands the validated [train] section to Config.train
    code=("edgepipe.models",),  # the model builders are loaded by name, not imported
)
