"""Train stage: fit a Keras model from edgepipe.models under a tf.distribute strategy.

The model owns its normalisation (read from the statistics artifact: a pixel mean/variance for
images, per-channel ones for sequences), and the exported SavedModel takes the raw input (uint8
pixels, or float32 sequences padded by edgepipe.contracts.model_inputs), so serving feeds what
ingest stored. Text models take int32 token ids: the vocabulary computed by the statistics
stage goes into model.json (and M/vocabulary.txt). The batch size is per replica; the learning
rate follows the configured scaling rule. Under multi-worker training only the chief commits
the artifact.

`[train] model` is a built-in builder's name or the user's own ("my_model.py:build", see
edgepipe.models.user): its source file is part of the cache key (`fingerprint`), and its
model is checked (shapes, probabilities, builtin-op TFLite conversion, reload) before
training. With a tune stage in the pipeline (a [tune] section), the optional input `tuning`
holds the best parameters of the search, which replace the config's own values.

The package: distribute.py (strategy and worker role), fit.py (model.fit with resume, NaN
detection, progress from progress.py), export.py (model.keras and the SavedModel). What the
tune stage shares with it is in components/shared: input_spec.py (what the model takes, from
the data), model_builder.py and model_check.py (check, build and compile the model),
input_pipeline.py (tf.data), tuned_config.py (parameters over a config). TensorFlow is
imported inside `run` so that a cached pipeline never pays for importing it.
"""

from __future__ import annotations

import math
import pathlib
import shutil
from typing import Any, Literal

import pydantic

from edgepipe import models  # the registry only: no Keras import
from edgepipe.components.shared import (examples_io, input_pipeline, input_spec,
                                        model_builder, task_heads, tuned_config)
from edgepipe.components.train import generation, precision as precision_choice
from edgepipe.components.train.semi_supervised import Settings as SemiSupervised, run_properties
from edgepipe.contracts import artifacts, tasks, unlabeled_artifacts
from edgepipe.pipeline.stage import StageConfig, WorkerFinished
from edgepipe.pipeline.spec import StageResult, StageSpec


class Config(StageConfig):
    # Set from [pipeline] task by the config loader (edgepipe.contracts.tasks).
    task: str = tasks.CLASSIFICATION.name
    # The loss: "crossentropy" (classification), "mse" or "huber" (regression, on targets
    # normalised by the train split's mean and standard deviation). Default: the task's first.
    loss: str | None = None
    # A built-in builder of edgepipe.models (cnn, lstm, mlp, ...: models.MODULES), or the user's
    # own: "path/to/my_model.py:build" (relative to the config file) or "package.module:build".
    model: str = "cnn"
    # Keyword options passed to the builder, e.g. {"filters": [32, 64], "dropout": 0.3}.
    model_options: dict[str, Any] = pydantic.Field({}, validate_default=True)
    epochs: int = pydantic.Field(10, ge=1, le=100_000)  # passes over the training split
    # Examples per replica per step; the global batch is this times the number of replicas.
    batch_size: int = pydantic.Field(64, ge=1, le=65_536)
    # Adam learning rate for one replica (before lr_scaling).
    learning_rate: float = pydantic.Field(1e-3, gt=0)  # too high: fit stops at the first NaN
    # How the learning rate follows the replica count: "none" keeps it, "linear" multiplies
    # it by the number of replicas (the global batch grows by the same factor).
    lr_scaling: Literal["none", "linear"] = "none"
    # "constant", or "cosine": decay from the learning rate to 0 over all training steps.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # Size of the shuffle buffer over the training split (>= split size = a full shuffle).
    shuffle_buffer: int = pydantic.Field(10000, ge=1, le=10_000_000)
    # Sequences: steps every example is padded or truncated to; default the longest training
    # sequence in the statistics. Text: tokens per example; default the longest training text
    # in tokens, at most input_spec.MAX_DEFAULT_TEXT_LENGTH (200). Ignored for images.
    sequence_length: int | None = pydantic.Field(None, ge=1, le=100_000)
    # Sequences and text: "pre" pads before the series and keeps the last steps (tokens) of
    # longer ones (an LSTM then ends on real data), "post" pads after and keeps the first.
    padding: Literal["pre", "post"] = "pre"
    # Images: "stored" takes the images as ingest stored them; "rgb" takes RGB pixels [H, W, 3]
    # (what phone cameras and MediaPipe's ImageClassifier give): grayscale examples are
    # repeated into three channels and the model converts RGB to gray inside.
    input_color: Literal["stored", "rgb"] = "stored"
    # Compute dtype policy: "auto" (bfloat16 where the CPU or TPU computes it natively, float16
    # on GPUs with Tensor Cores, else float32: components/train/precision.py), "float32",
    # "mixed_bfloat16" or "mixed_float16" (GPUs only); variables and the output stay float32.
    precision: precision_choice.Setting = "auto"
    # Minutes of training (model.fit) to fit the epochs and the learning-rate schedule into,
    # measured on the first steps (components/train/budget.py); None: all `epochs`.
    max_minutes: float | None = pydantic.Field(None, gt=0)
    # Label smoothing of the cross-entropy loss: the target puts 1 - s on the true class and
    # spreads s over all classes (0: none; 0.1 measured +0.2-0.3 points on Fashion-MNIST).
    label_smoothing: float = pydantic.Field(0.0, ge=0.0, lt=1.0)
    # Augmentation of the training batches in tf.data (validation, test and later stages see
    # the examples unchanged): "none"; "translate" shifts each image by up to augment_pixels
    # (zero fill); "audio": time shift and noise (components/shared/audio_augment.py).
    augment: Literal["none", "translate", "audio"] = "none"
    augment_pixels: int = pydantic.Field(2, ge=1, le=1_000)
    # Task detection: flip, scale (0.75..1.25) and shift (10%) images with their boxes.
    boxes_augment: bool = True
    # augment = "audio": the largest time shift, the noise level and how often noise is mixed in.
    augment_shift_ms: float = pydantic.Field(100.0, ge=0.0, le=10_000.0)
    augment_noise_level: float = pydantic.Field(0.05, ge=0.0, le=1.0)
    augment_noise_probability: float = pydantic.Field(0.8, ge=0.0, le=1.0)
    # [train.semi_supervised]: when present, self-training on the unlabeled split (see
    # components/train/semi_supervised.py); absent, supervised training on train only.
    semi_supervised: SemiSupervised | None = None

    @pydantic.model_validator(mode="after")
    def _fits_task(self):
        tasks.check_model(self.task, self.model, models.user.is_reference(self.model))
        task = tasks.for_model(self.task, self.model)
        if self.loss is not None and self.loss not in task.losses:
            raise ValueError(f"loss = {self.loss!r} does not fit task {task.name!r}; expected "
                             f"one of {list(task.losses)}.")
        if task.label != "class":
            used = [key for key in ("label_smoothing", "semi_supervised")
                    if key in self.model_fields_set]
            if used:
                raise ValueError(f"{', '.join(used)}: class-label training only; task "
                                 f"{task.name!r} does not use it.")
        if self.max_minutes and self.semi_supervised:
            raise ValueError("max_minutes fits one model.fit to a budget; self-training "
                             "([train.semi_supervised]) runs several: remove one of them.")
        return self

    @pydantic.field_validator("model")
    @classmethod
    def _known_model(cls, model: str, info: pydantic.ValidationInfo) -> str:
        return models.resolve(model, (info.context or {}).get("base_dir", "."))

    @pydantic.field_validator("model_options")
    @classmethod
    def _known_options(cls, options: dict[str, Any], info: pydantic.ValidationInfo):
        if "model" in info.data:  # else the model's own error is reported
            models.check_options(info.data["model"], options)
        return options


def fingerprint(config: Config, inputs) -> str | None:
    """A user model's source file (editing it re-runs training); None for a built-in, whose
    source is part of the stage's code (SPEC.code)."""
    if not models.user.is_reference(config.model):
        return None
    return f"user model sha256 {models.user.fingerprint(config.model)}"


RUNS = {"generation": generation.run}  # tasks that train their own way, one module each


def run(inputs, outputs, config: Config, context) -> StageResult:
    if config.task in RUNS:
        return RUNS[config.task](inputs, outputs, config, context)
    return _train(inputs, outputs, config, context)


def _train(inputs, outputs, config: Config, context) -> StageResult:
    import tensorflow as tf

    from edgepipe.components.train import distribute, export
    from edgepipe.models.keras import keras

    config, tuned = _tuned(config, inputs, context.log)
    examples, statistics = inputs["examples"].path, inputs["statistics"].path
    spec = input_spec.input_spec(examples, statistics, config.sequence_length, config.padding,
                                 config.input_color)
    spec.update(input_spec.label_spec(examples, statistics, config.task, config.model))
    class_names = spec["class_names"]
    outputs_count = len(class_names) or len(spec["target_names"])
    model_builder.check(config.model, config.model_options, spec["input_feature"])
    model_builder.preflight(tf, keras, config, spec, outputs_count)
    placement = distribute.place(context.runtime, config.batch_size, config.learning_rate,
                                 config.lr_scaling)
    steps = max(1, math.ceil(examples_io.split_size(examples, "train")
                             / placement.global_batch))
    context.log.info("training %s on %s (%s), %d replica(s), global batch %d, learning rate "
                     "%g", config.model, placement.description, placement.role,
                     placement.replicas, placement.global_batch, placement.learning_rate)
    config, choice = precision_choice.resolve(tf, keras, config, placement.description, lambda:
                                              model_builder.build(config, spec, outputs_count),
                                              context.log)
    keras.utils.set_random_seed(context.seed)
    distribute.set_precision(keras, config.precision, placement.description)
    try:
        model, fitted, outcome = _fit(tf, keras, examples, spec, placement, config, context,
                                      class_names, steps)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if (config.precision != "float32" or config.label_smoothing
            or config.task != tasks.CLASSIFICATION.name):  # see export.float32_copy
        model = export.float32_copy(keras, model)
    model_dir = _save(tf, model, spec, fitted, placement, outputs["model"], context)
    info = {**export.model_info(config, spec, int(model.count_params()), placement, fitted),
            "precision_choice": choice.properties(), "budget": fitted.budget}
    artifacts.write_model_info(model_dir, info)
    artifacts.write_history(model_dir, fitted.history)
    context.log.info("saved model (%d parameters) to %s", info["params"], model_dir)
    semi = {}
    if outcome is not None:
        unlabeled_artifacts.write_pseudo_labels(model_dir, outcome.summary, outcome.rows)
        semi = run_properties(outcome.summary)
    return StageResult({
        **semi,
        "task": spec["task"], "loss": info["loss"],
        "params": info["params"], "epochs": len(fitted.history.get("loss", [])),
        "strategy": placement.description,
        "replicas": placement.replicas, "global_batch_size": placement.global_batch,
        "learning_rate": placement.learning_rate,
        "final": {metric: values[-1] for metric, values in fitted.history.items()},
        "resumed_from_epoch": fitted.resumed_from_epoch,
        "seconds_per_epoch": fitted.mean_epoch_seconds,
        "images_per_second": fitted.images_per_second,
        "precision": choice.properties(),
        **({"budget": fitted.budget} if fitted.budget else {}),
        **({"tuned_params": tuned} if tuned else {}),
    }, resumed=fitted.resumed_from_epoch is not None or bool(outcome and outcome.resumed))


def _fit(tf, keras, examples, spec: dict, placement, config: Config, context,
         class_names: list[str], steps: int):
    """(the model, fit.Fitted, the semi-supervised outcome or None): supervised training on
    the train split, or self-training with the unlabeled split."""
    from edgepipe.components.train import fit, semi_supervised

    with placement.strategy.scope():
        model = model_builder.build_and_compile(keras, config, spec,
                                                len(class_names) or len(spec["target_names"]),
                                                placement.learning_rate, config.epochs * steps)
    if spec["task"] in task_heads.MODEL_SPEC:  # a detector's anchors (grid), for its targets
        spec.update(task_heads.MODEL_SPEC[spec["task"]](model, config))
    if config.semi_supervised:
        outcome = semi_supervised.train(tf, keras, model, examples, spec, placement, config,
                                        context, class_names)
        return model, outcome.fitted, outcome
    training_data, validation_data = _datasets(tf, examples, spec, placement, config,
                                               context.seed)
    fitted = fit.fit(tf, keras, model, training_data, validation_data, steps, config, context,
                     placement.chief, placement.role, global_batch=placement.global_batch)
    return model, fitted, None


def _tuned(config: Config, inputs, log) -> tuple[Config, dict[str, Any]]:
    """The config with the tune stage's best parameters in place of its own values."""
    if "tuning" not in inputs:
        return config, {}
    best = artifacts.read_tuning(inputs["tuning"].path)["best_params"]
    log.info("training with the tune stage's best parameters %s", best)
    return tuned_config.apply(config, best, f"the tune stage's best parameters {best}"), best


def _datasets(tf, examples, spec: dict, placement, config: Config, seed: int):
    """The training input (one pipeline per worker, shuffled and repeated) and the
    validation split (None when it is empty)."""
    from edgepipe.components.train import distribute

    augments = input_pipeline.training_augments(examples, spec, config)
    training = distribute.sharded_dataset(
        tf, placement.strategy,
        lambda context, batch: input_pipeline.dataset(
            tf, examples, "train", spec, batch, seed=seed, shuffle_buffer=config.shuffle_buffer,
            repeat=True, input_context=context, **augments),
        placement.global_batch)
    if not examples_io.split_size(examples, "validation"):
        return training, None
    static = placement.description.startswith("tpu")  # TPUs need full, static batches
    return training, input_pipeline.dataset(tf, examples, "validation", spec,
                                            placement.global_batch, drop_remainder=static)


def _save(tf, model, spec: dict, fitted, placement, model_dir, context,
          exporter=None) -> pathlib.Path:
    """Save the model into the artifact (the chief) with `exporter` (default export.save) and
    return its folder. Under multi-worker training every worker must save (the saves are
    collective); the others save into their scratch folder and stop here with WorkerFinished."""
    from edgepipe.components.train import distribute, export

    model_dir = pathlib.Path(model_dir)
    (exporter or export.save)(tf, model, spec,
                              model_dir if placement.chief else fitted.work_dir / "model")
    # The chief commits (and the runner then removes the shared scratch folder) only once
    # every worker has finished writing there.
    distribute.barrier(tf, placement.strategy)
    if not placement.chief:
        shutil.rmtree(fitted.work_dir, ignore_errors=True)
        losses = fitted.history.get("loss", [None])
        message = (f"{placement.role} finished training ({len(losses)} epochs, final loss "
                   f"{losses[-1]!r}); the chief commits the model, so this worker stops here.")
        context.log.info(message)
        raise WorkerFinished(message)
    shutil.copytree(fitted.work_dir / "logs", model_dir / artifacts.LOGS)
    return model_dir


SPEC = StageSpec(
    name="train", version=2, config=Config, run=run, fingerprint=fingerprint,
    inputs={"examples": "Examples", "statistics": "Statistics"},
    optional_inputs={"tuning": "Tuning"},  # wired only when the pipeline has a tune stage
    outputs={"model": "Model"},
    collective=True,  # every worker of a multi-worker cluster trains at once
    code=("edgepipe.models",),  # the model builders are loaded by name, not imported
)
