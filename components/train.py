"""Train stage: fit a Keras model from the models registry under a tf.distribute strategy.

The model owns its normalisation (read from the statistics artifact: a pixel mean/variance for
images, per-channel ones for sequences), and the exported SavedModel takes the raw input (uint8
pixels, or float32 sequences padded by components/model_inputs.py), so serving feeds what
ingest stored. Text models take int32 token ids: the vocabulary computed by the statistics
stage goes into model.json (and M/vocabulary.txt), and components/model_inputs.py tokenises raw
strings with it for every consumer. The batch size is per replica; the learning rate follows
the configured scaling rule. Training state is backed up every epoch in the scratch directory:
a killed run resumes where it stopped. Under multi-worker training only the chief commits the
artifact. This module holds the stage contract, fitting and export; the tf.data input
pipeline is in components/train_data.py, the progress callback (epoch and step logs, the
history kept in scratch) in components/train_progress.py. TensorFlow is imported inside `run`
so that a cached pipeline never pays for importing it.
"""

from __future__ import annotations

import inspect
import json
import math
import pathlib
import shutil
from typing import Any, Literal

import pydantic

from components import examples_io, model_inputs, text_tokens, train_data
from components.train_progress import progress_callback
from pipeline.stage import StageConfig

NAME = "train"
VERSION = 2
INPUTS = {"examples": "Examples", "statistics": "Statistics", "schema": "Schema"}
OUTPUTS = {"model": "Model"}
CODE = ("models", "components.distribute", "components.examples_io", "components.model_inputs",
        "components.text_tokens", "components.train_data", "components.train_progress")

PROGRESS_SECONDS = 10.0  # during long epochs, log step progress at most this often


class Config(StageConfig):
    # Name of the builder in models.BUILDERS.
    model: str = "cnn"
    # Keyword options passed to the builder, e.g. {"filters": [32, 64], "dropout": 0.3}.
    model_options: dict[str, Any] = {}
    # Number of passes over the training split.
    epochs: int = pydantic.Field(10, ge=1)
    # Examples per replica per step; the global batch is this times the number of replicas.
    batch_size: int = pydantic.Field(64, ge=1)
    # Adam learning rate for one replica (before lr_scaling).
    learning_rate: float = pydantic.Field(1e-3, gt=0)
    # How the learning rate follows the replica count: "none" keeps it, "linear" multiplies
    # it by the number of replicas (the global batch grows by the same factor).
    lr_scaling: Literal["none", "linear"] = "none"
    # "constant", or "cosine": decay from the learning rate to 0 over all training steps.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # Size of the shuffle buffer over the training split (>= split size = a full shuffle).
    shuffle_buffer: int = pydantic.Field(10000, ge=1)
    # Sequences: steps every example is padded or truncated to; default the longest training
    # sequence in the statistics. Text: tokens per example; default the longest training text
    # in tokens, at most model_inputs.MAX_DEFAULT_TEXT_LENGTH (200). Ignored for images.
    sequence_length: int | None = pydantic.Field(None, ge=1)
    # Sequences and text: "pre" pads before the series and keeps the last steps (tokens) of
    # longer ones (an LSTM then ends on real data), "post" pads after and keeps the first.
    padding: Literal["pre", "post"] = "pre"
    # Compute dtype policy: "float32", "mixed_bfloat16" (TPU, recent CPUs) or "mixed_float16"
    # (GPUs only); variables and the output stay float32.
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"


class WorkerFinished(SystemExit):
    """A non-chief worker finished its share of multi-worker training: the chief commits the
    artifact, so this process stops the pipeline cleanly (exit status 0) without committing."""

    def __init__(self, message: str):
        super().__init__(0)
        self.message = message

    def __str__(self) -> str:
        return self.message


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    import tensorflow as tf

    import models
    from components import distribute
    from models.keras import keras

    examples = inputs["examples"].path
    model_dir = pathlib.Path(outputs["model"])
    class_names = examples_io.class_names(examples)
    spec = model_inputs.input_spec(examples, inputs["statistics"].path, config.sequence_length,
                                   config.padding)
    _check_model(models, config, spec["input_feature"])

    strategy, strategy_description, replicas = distribute.choose_strategy(context.runtime)
    chief, role = distribute.worker_role(strategy)
    global_batch = config.batch_size * replicas
    learning_rate = config.learning_rate * (replicas if config.lr_scaling == "linear" else 1)
    train_size = examples_io.split_size(examples, "train")
    steps = max(1, math.ceil(train_size / global_batch))
    context.log.info(
        "training %s on %s (%s), %d replica(s), global batch %d, learning rate %g",
        config.model, strategy_description, role, replicas, global_batch, learning_rate,
    )

    keras.utils.set_random_seed(context.seed)
    static = strategy_description.startswith("tpu")  # TPUs need full, static batches
    training_data = distribute.sharded_dataset(
        tf, strategy,
        lambda input_context, batch: train_data.dataset(tf, examples, "train", spec, batch,
                                                        config, context.seed, input_context),
        global_batch,
    )
    validation_data = None
    if examples_io.split_size(examples, "validation"):
        validation_data = train_data.dataset(tf, examples, "validation", spec, global_batch,
                                             config, context.seed, None, drop_remainder=static)

    distribute.set_precision(keras, config.precision, strategy_description)
    try:
        with strategy.scope():
            model = models.build(
                config.model, input_shape=spec["input_shape"], num_classes=len(class_names),
                **_builder_inputs(spec), **config.model_options,
            )
            rate = learning_rate
            if config.lr_schedule == "cosine":
                rate = keras.optimizers.schedules.CosineDecay(learning_rate,
                                                              config.epochs * steps)
            model.compile(optimizer=keras.optimizers.Adam(rate),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fitted = _fit(tf, keras, model, training_data, validation_data, steps, config, context,
                      chief, role)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    progress, work_dir = fitted["progress"], fitted["work_dir"]
    epochs_history = fitted["history"]

    history = {
        metric: [epochs_history.get(str(epoch), {}).get(metric) for epoch in range(config.epochs)]
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy")
        if metric in epochs_history.get(str(config.epochs - 1), {})
    }
    final = {metric: values[-1] for metric, values in history.items()}
    params = int(model.count_params())
    # Under multi-worker training every worker must save (the saves are collective); only the
    # chief writes into the artifact, the others into their own scratch folder.
    target = model_dir if chief else work_dir / "model"
    target.mkdir(parents=True, exist_ok=True)
    model.save(target / "model.keras")
    if spec["input_feature"] == "text":
        text_tokens.write_vocabulary(target / text_tokens.VOCABULARY_FILE, spec["vocabulary"])
    _export_serving(tf, model, spec, target / "saved_model")
    # The chief commits (and the runner then removes the shared scratch folder) only once
    # every worker has finished writing there.
    distribute.barrier(tf, strategy)
    if not chief:
        shutil.rmtree(work_dir, ignore_errors=True)
        message = (f"{role} finished training ({config.epochs} epochs, final loss "
                   f"{final.get('loss')!r}); the chief commits the model, so this worker stops "
                   "here.")
        context.log.info(message)
        raise WorkerFinished(message)
    shutil.copytree(work_dir / "logs", model_dir / "logs")
    _write_json(model_dir / "history.json", history)
    _write_json(model_dir / "model.json", {
        "model": config.model,
        "model_options": config.model_options,
        **{key: value for key, value in spec.items() if key != "normalization"},
        "class_names": class_names,
        "normalization": spec.get("normalization"),
        "params": params,
        "strategy": strategy_description,
        "replicas": replicas,
        "global_batch_size": global_batch,
        "learning_rate": learning_rate,
        "lr_scaling": config.lr_scaling,
        "lr_schedule": config.lr_schedule,
        "precision": config.precision,
        "epochs": config.epochs,
        "resumed_from_epoch": fitted["resumed_from_epoch"],
    })
    context.log.info("saved model (%d parameters) to %s", params, model_dir)
    return {
        "params": params,
        "epochs": config.epochs,
        "strategy": strategy_description,
        "replicas": replicas,
        "global_batch_size": global_batch,
        "learning_rate": learning_rate,
        "final": final,
        "resumed": fitted["resumed_from_epoch"] is not None,
        "resumed_from_epoch": fitted["resumed_from_epoch"],
        "seconds_per_epoch": progress.mean_epoch_seconds(),
    }


def _fit(tf, keras, model, train_data, validation_data, steps: int, config: Config, context,
         chief: bool, role: str) -> dict[str, Any]:
    """model.fit with backup/resume, NaN detection, progress and TensorBoard logs.

    Each worker keeps its history and logs in its own scratch folder; the backup folder is
    shared (BackupAndRestore itself separates the chief's checkpoint from the others').
    """
    scratch = pathlib.Path(context.scratch_dir)
    backup_dir = scratch / "backup"
    work_dir = scratch if chief else scratch / role
    resumed = tf.train.latest_checkpoint(str(backup_dir / "chief")) is not None
    if resumed:
        context.log.info("resuming from the training backup in %s", backup_dir)
    history_path = work_dir / "history.json"
    # TensorBoard writes to scratch so the curves of a killed run survive into the resumed one.
    logs_dir = work_dir / "logs"
    if not resumed:  # leftovers of a run killed before its first backup describe nothing
        _clear(history_path, logs_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    epochs_history = _read_json(history_path)
    progress = progress_callback(keras, context.log, config.epochs, steps, epochs_history,
                                 history_path, PROGRESS_SECONDS)
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=config.epochs,
        steps_per_epoch=steps,
        verbose=0,
        # Progress records the epoch before BackupAndRestore commits it, so a kill between
        # the two re-runs that epoch rather than losing its history entry.
        callbacks=[
            keras.callbacks.TerminateOnNaN(),
            progress,
            keras.callbacks.BackupAndRestore(backup_dir=str(backup_dir)),
            keras.callbacks.TensorBoard(log_dir=str(logs_dir)),
        ],
    )
    if progress.nan_epoch is not None:
        _clear(backup_dir, history_path, logs_dir)  # a re-run must start afresh, not resume
        raise FloatingPointError(
            f"Training diverged: the loss became NaN/inf in epoch {progress.nan_epoch + 1} of "
            f"{config.epochs} (model {config.model!r}, learning_rate {config.learning_rate}, "
            f"model_options {config.model_options}). No model was saved; lower [train] "
            "learning_rate or check the model options and the input statistics."
        )
    first_epoch = progress.first_epoch if progress.first_epoch is not None else config.epochs
    return {"progress": progress, "work_dir": work_dir, "history": epochs_history,
            "resumed_from_epoch": first_epoch if resumed else None}


def _check_model(models, config: Config, feature: str) -> None:
    """Reject a model that does not take this input, or unknown options, before training."""
    if config.model not in models.BUILDERS:
        models.build(config.model)  # raises the registry's error naming the valid models
    takes = models.INPUT_FEATURES.get(config.model)
    if takes != feature:
        fitting = sorted(name for name, kind in models.INPUT_FEATURES.items() if kind == feature)
        raise ValueError(
            f"[train] model {config.model!r} takes {takes!r} inputs but the examples hold "
            f"{feature!r}; set [train] model to one of {fitting}."
        )
    parameters = inspect.signature(models.BUILDERS[config.model]).parameters
    allowed = [name for name in parameters
               if name not in ("input_shape", "num_classes", "mean", "variance",
                               "vocabulary_size")]
    unknown = sorted(set(config.model_options) - set(allowed))
    if unknown:
        raise ValueError(
            f"[train.model_options] has unknown option(s) {unknown} for model "
            f"{config.model!r}; expected a subset of {allowed}."
        )


def _builder_inputs(spec: dict) -> dict[str, Any]:
    """What the builder takes besides the shape: normalisation, or a text vocabulary's size."""
    if spec["input_feature"] == "text":
        return {"vocabulary_size": len(spec["vocabulary"])}
    return spec["normalization"]


def _export_serving(tf, model, spec: dict, path: pathlib.Path) -> None:
    """SavedModel whose serving signature takes the raw input as a deployment feeds it:
    `image` uint8 [None, H, W, C], `sequence` float32 [None, T, C] (padded) or `tokens`
    int32 [None, T] (token ids of texts, see components/text_tokens.py)."""
    module = tf.Module()
    # Track the variables, not the Keras model: saving a Keras model object here would make
    # tf.saved_model.save trace all of Keras's own functions too.
    module.variables_to_save = list(model.variables)
    feature = spec["input_feature"]
    text = feature == "text"
    signature = tf.TensorSpec([None, *spec["input_shape"]], tf.as_dtype(spec["input_dtype"]),
                              name="tokens" if text else feature)

    @tf.function(input_signature=[signature])
    def serve(values):
        inputs = values if text else tf.cast(values, tf.float32)
        return {"probabilities": model(inputs, training=False)}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def _clear(*paths: pathlib.Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _read_json(path: pathlib.Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: pathlib.Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
