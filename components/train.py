"""Train stage: fit a Keras model from the models registry under a tf.distribute strategy.

The model owns its normalisation (mean and variance of the training images, read from the
statistics artifact), and the exported SavedModel takes raw uint8 pixels, so serving feeds
exactly what ingest stored. Training state is backed up every epoch in the scratch directory:
a killed run resumes where it stopped. TensorFlow is imported inside `run` so that a cached
pipeline never pays for importing it.
"""

from __future__ import annotations

import inspect
import json
import math
import pathlib
import shutil
import time
from typing import Any

import pydantic

from components import examples_io
from pipeline.stage import StageConfig

NAME = "train"
VERSION = 1
INPUTS = {"examples": "Examples", "statistics": "Statistics", "schema": "Schema"}
OUTPUTS = {"model": "Model"}
CODE = ("models", "components.distribute", "components.examples_io")

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
    # Adam learning rate.
    learning_rate: float = pydantic.Field(1e-3, gt=0)
    # Size of the shuffle buffer over the training split (>= split size = a full shuffle).
    shuffle_buffer: int = pydantic.Field(10000, ge=1)


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    import tensorflow as tf

    import models
    from components.distribute import choose_strategy
    from models.keras import keras

    examples = inputs["examples"].path
    model_dir = pathlib.Path(outputs["model"])
    class_names = examples_io.class_names(examples)
    input_shape = tuple(int(size) for size in examples_io.input_shape(examples))
    mean, std = _image_statistics(inputs["statistics"].path)
    _check_model_options(models, config)

    strategy, strategy_description, replicas = choose_strategy(context.runtime)
    chief = _is_chief(strategy)
    global_batch = config.batch_size * replicas
    context.log.info(
        "training %s on %s, %d replica(s), global batch %d",
        config.model, strategy_description, replicas, global_batch,
    )

    keras.utils.set_random_seed(context.seed)
    train_size = examples_io.split_size(examples, "train")
    validation_size = examples_io.split_size(examples, "validation")
    train_data = _dataset(tf, examples, "train", global_batch, config.shuffle_buffer, context.seed)
    validation_data = (
        _dataset(tf, examples, "validation", global_batch, None, context.seed)
        if validation_size
        else None
    )

    with strategy.scope():
        model = models.build(
            config.model,
            input_shape=input_shape,
            num_classes=len(class_names),
            mean=mean,
            variance=std**2,
            **config.model_options,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    scratch = pathlib.Path(context.scratch_dir)
    backup_dir = scratch / "backup"
    resumed = tf.train.latest_checkpoint(str(backup_dir / "chief")) is not None
    if resumed:
        context.log.info("resuming from the training backup in %s", backup_dir)
    history_path = scratch / "history.json"
    # TensorBoard writes to scratch so the curves of a killed run survive into the resumed one.
    logs_dir = scratch / "logs"
    if not resumed:  # leftovers of a run killed before its first backup describe nothing
        _clear(history_path, logs_dir)
    epochs_history = _read_json(history_path)
    progress = _progress_callback(keras, context.log, config.epochs,
                                  math.ceil(train_size / global_batch), epochs_history,
                                  history_path)
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=config.epochs,
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

    history = {
        metric: [epochs_history.get(str(epoch), {}).get(metric) for epoch in range(config.epochs)]
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy")
        if metric in epochs_history.get(str(config.epochs - 1), {})
    }
    final = {metric: values[-1] for metric, values in history.items()}
    params = int(model.count_params())
    # Under multi-worker training every worker must save (the saves are collective); only the
    # chief writes into the artifact, the others into scratch.
    target = model_dir if chief else scratch / "non_chief_model"
    target.mkdir(parents=True, exist_ok=True)
    model.save(target / "model.keras")
    _export_serving(tf, model, input_shape, target / "saved_model")
    if chief:
        shutil.copytree(logs_dir, model_dir / "logs")
        _write_json(model_dir / "history.json", history)
        _write_json(model_dir / "model.json", {
            "model": config.model,
            "model_options": config.model_options,
            "input_shape": list(input_shape),
            "input_dtype": "uint8",
            "class_names": class_names,
            "normalization": {"mean": mean, "variance": std**2},
            "params": params,
            "strategy": strategy_description,
            "replicas": replicas,
            "global_batch_size": global_batch,
            "epochs": config.epochs,
        })
    context.log.info("saved model (%d parameters) to %s", params, model_dir)
    return {
        "params": params,
        "epochs": config.epochs,
        "strategy": strategy_description,
        "replicas": replicas,
        "final": final,
        "resumed": resumed,
        "seconds_per_epoch": progress.mean_epoch_seconds(),
    }


def _dataset(tf, examples, split: str, global_batch: int, shuffle_buffer: int | None, seed: int):
    """(float32 image, label) batches; shuffled with the stage seed when a buffer is given.

    The decoded images are cached as uint8 (a quarter of the memory of float32) and cast per
    batch, so only the first epoch pays for decoding the PNGs.
    """
    data = examples_io.as_dataset(examples, split).map(
        lambda record: (record["image"], record["label"]), num_parallel_calls=tf.data.AUTOTUNE
    ).cache()
    if shuffle_buffer:
        data = data.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    data = data.batch(global_batch).map(
        lambda images, labels: (tf.cast(images, tf.float32), labels),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)
    # The splits may be a single shard: shard by element when several workers read them.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


def _image_statistics(statistics_dir: pathlib.Path) -> tuple[float, float]:
    """Mean and standard deviation of the training images' pixels, from statistics.json."""
    path = pathlib.Path(statistics_dir) / "statistics.json"
    try:
        image = json.loads(path.read_text())["splits"]["train"]["features"]["image"]
        mean, std = float(image["mean"]), float(image["std"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path}: cannot read splits.train.features.image.mean/std ({error!r}); the train "
            "stage normalises with them. Re-run the statistics stage on these examples."
        ) from error
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(
            f"{path}: train image statistics mean={mean}, std={std}; expected finite values "
            "and std > 0 (a constant image split cannot be normalised). Check the ingested data."
        )
    return mean, std


def _check_model_options(models, config: Config) -> None:
    """Reject unknown model options before training starts, listing the valid ones."""
    if config.model not in models.BUILDERS:
        models.build(config.model)  # raises the registry's error naming the valid models
    parameters = inspect.signature(models.BUILDERS[config.model]).parameters
    allowed = [name for name in parameters
               if name not in ("input_shape", "num_classes", "mean", "variance")]
    unknown = sorted(set(config.model_options) - set(allowed))
    if unknown:
        raise ValueError(
            f"[train.model_options] has unknown option(s) {unknown} for model "
            f"{config.model!r}; expected a subset of {allowed}."
        )


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def _export_serving(tf, model, input_shape, path: pathlib.Path) -> None:
    """SavedModel whose serving signature takes raw uint8 images, as a deployment feeds them."""
    module = tf.Module()
    # Track the variables, not the Keras model: saving a Keras model object here would make
    # tf.saved_model.save trace all of Keras's own functions too.
    module.variables_to_save = list(model.variables)

    @tf.function(input_signature=[tf.TensorSpec([None, *input_shape], tf.uint8, name="image")])
    def serve(image):
        return {"probabilities": model(tf.cast(image, tf.float32), training=False)}

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


def _progress_callback(keras, log, epochs: int, steps: int, history: dict,
                       history_path: pathlib.Path):
    """A callback that logs one line per epoch and, in long epochs, step progress.

    It also keeps the history in scratch after every epoch, keyed by epoch number, so a
    resumed run (whose fit() only sees the remaining epochs) still returns the whole curve.
    """

    class Progress(keras.callbacks.Callback):
        nan_epoch: int | None = None
        seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.started = self.last_report = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if now - self.last_report >= PROGRESS_SECONDS:
                self.last_report = now
                loss = float((logs or {}).get("loss", float("nan")))
                log.info("epoch %d/%d step %d/%d loss %.4f",
                         self.epoch + 1, epochs, batch + 1, steps, loss)

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.monotonic() - self.started
            self.seconds = [*self.seconds, seconds]
            logs = {name: float(value) for name, value in (logs or {}).items()}
            # TerminateOnNaN stops at the bad batch; its loss is then this epoch's loss.
            if self.nan_epoch is None and not all(
                math.isfinite(value) for name, value in logs.items() if "loss" in name
            ):
                self.nan_epoch = epoch
            metrics = " ".join(f"{name} {logs[name]:.4f}" for name in
                               ("loss", "accuracy", "val_loss", "val_accuracy") if name in logs)
            log.info("epoch %d/%d %s %.1f s", epoch + 1, epochs, metrics, seconds)
            history[str(epoch)] = {**logs, "seconds": seconds}
            _write_json(history_path, history)

        def mean_epoch_seconds(self) -> float | None:
            return round(sum(self.seconds) / len(self.seconds), 3) if self.seconds else None

    return Progress()
