"""The train stage's generation piece: a character model trained with teacher forcing on
windows of the corpus, under the same tf.distribute placement, fit loop (resume, NaN stop,
progress, TensorBoard) and time budget as every model.

The train split is one stream of character ids (edgepipe.contracts.characters: each document
after [START]), cut into windows of `[train] sequence_length` + 1 ids: the model reads the
first `sequence_length` and learns each next one. Windows are shuffled with the pipeline
seed; each worker of a cluster reads its own shard of them. Validation windows are cut the
same way from the validation split.

The Model artifact holds model.keras, characters.json (the vocabulary it was trained with)
and a SavedModel with two signatures: `serving_default` (ids [batch, T] -> logits
[batch, T, V], what evaluate scores) and `step` (one id and the explicit LSTM state ->
logits and the next state: what the TFLite variants convert and a device runs).
"""

from __future__ import annotations

import math
import pathlib
import shutil

import numpy as np

from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, characters
from edgepipe.pipeline.spec import StageResult

DEFAULT_SEQUENCE_LENGTH = 100


def windows(ids: np.ndarray, length: int) -> np.ndarray:
    """Non-overlapping windows int32 [N, length + 1] of a stream (the tail that does not
    fill one is left out)."""
    count = (len(ids) - 1) // length
    if count < 1:
        return np.zeros((0, length + 1), np.int32)
    return np.stack([ids[start * length:start * length + length + 1] for start in range(count)])


def dataset(tf, rows: np.ndarray, batch: int, seed: int | None = None, input_context=None,
            repeat: bool = False):
    """(inputs, next ids) batches of windows; shuffled and repeated for training."""
    data = tf.data.Dataset.from_tensor_slices(rows)
    if input_context is not None and input_context.num_input_pipelines > 1:
        data = data.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if seed is not None:
        data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    data = data.batch(batch, drop_remainder=repeat)
    return data.map(lambda rows: (rows[:, :-1], rows[:, 1:])).prefetch(tf.data.AUTOTUNE)


def datasets(tf, distribute, placement, train_rows: np.ndarray, validation_rows: np.ndarray,
             seed: int):
    """The training input (sharded per worker, shuffled, repeated) and validation (or None)."""
    training = distribute.sharded_dataset(
        tf, placement.strategy,
        lambda input_context, batch: dataset(tf, train_rows, batch, seed, input_context,
                                             repeat=True),
        placement.global_batch)
    validation = (dataset(tf, validation_rows, placement.global_batch)
                  if len(validation_rows) else None)
    return training, validation


def split_windows(examples, split: str, index: dict, length: int) -> np.ndarray:
    _, texts = examples_io.load_texts(examples, split)
    return windows(characters.stream(texts, index), length)


def run(inputs, outputs, config, context) -> StageResult:
    import tensorflow as tf

    from edgepipe import models
    from edgepipe.components.shared import model_builder
    from edgepipe.components.train import distribute, fit, stage
    from edgepipe.models.keras import keras

    examples = inputs["examples"].path
    vocabulary = characters.read(pathlib.Path(inputs["statistics"].path) / characters.FILE)
    index = characters.index_of(vocabulary["tokens"])
    length = config.sequence_length or DEFAULT_SEQUENCE_LENGTH
    check_model(models, config.model)
    train_rows = split_windows(examples, "train", index, length)
    validation_rows = split_windows(examples, "validation", index, length)
    placement = distribute.place(context.runtime, config.batch_size, config.learning_rate,
                                 config.lr_scaling)
    if len(train_rows) < placement.global_batch:
        raise ValueError(
            f"{examples}: the train split gives {len(train_rows)} windows of "
            f"{length + 1} characters, fewer than one global batch ({placement.global_batch}); "
            "lower [train] sequence_length or batch_size, or use a larger corpus.")
    steps = max(1, len(train_rows) // placement.global_batch)
    context.log.info("training %s on %d windows of %d characters (%s), %d replica(s), "
                     "global batch %d", config.model, len(train_rows), length,
                     placement.description, placement.replicas, placement.global_batch)
    keras.utils.set_random_seed(context.seed)
    spec = {"task": config.task, "input_feature": "text", "input_shape": [length],
            "input_dtype": "int32", "class_names": [],
            "vocabulary_size": len(vocabulary["tokens"]),
            "units": vocabulary["units"]}
    with placement.strategy.scope():
        model = models.build(config.model, vocabulary_size=len(vocabulary["tokens"]),
                             **config.model_options)
        model_builder.compile_model(keras, model, config, placement.learning_rate,
                                    config.epochs * steps, spec)
    training, validation = datasets(tf, distribute, placement, train_rows, validation_rows,
                                    context.seed)
    fitted = fit.fit(tf, keras, model, training, validation, steps, config, context,
                     placement.chief, placement.role, global_batch=placement.global_batch)
    model_dir = stage._save(tf, model, spec, fitted, placement, outputs["model"], context,
                            exporter=lambda tf, model, spec, folder: save(
                                tf, model, folder, pathlib.Path(inputs["statistics"].path)))
    info = model_info(model, config, spec, placement, fitted, len(train_rows),
                      len(validation_rows))
    artifacts.write_model_info(model_dir, info)
    artifacts.write_history(model_dir, fitted.history)
    context.log.info("saved model (%d parameters) to %s", info["params"], model_dir)
    return StageResult({
        "task": config.task, "loss": "crossentropy", "params": info["params"],
        "epochs": info["epochs"], "strategy": placement.description,
        "replicas": placement.replicas, "global_batch_size": placement.global_batch,
        "learning_rate": placement.learning_rate,
        "final": {metric: values[-1] for metric, values in fitted.history.items()},
        "resumed_from_epoch": fitted.resumed_from_epoch,
        "seconds_per_epoch": fitted.mean_epoch_seconds,
        "training_windows": len(train_rows),
        **({"budget": fitted.budget} if fitted.budget else {}),
    }, resumed=fitted.resumed_from_epoch is not None)


def check_model(models, name: str) -> None:
    if models.INPUT_FEATURES.get(name, ("text",)) != ("text",) or \
            "vocabulary_size" not in models.signature(name).parameters:
        raise ValueError(f"[train] model = {name!r} does not generate text; task "
                         "\"generation\" needs a builder taking vocabulary_size, e.g. char_lstm.")


def model_info(model, config, spec: dict, placement, fitted, windows: int,
               validation_windows: int) -> dict:
    """model.json: what the generator takes and returns, and how it was trained."""
    from edgepipe.models import char_lstm

    layers, units = char_lstm.state_shape(model)
    return {"model": config.model, "model_options": config.model_options, **spec,
            "sequence_length": spec["input_shape"][0], "state_shape": [layers, units],
            "vocabulary": characters.FILE, "loss": "crossentropy",
            "params": int(model.count_params()), "strategy": placement.description,
            "replicas": placement.replicas, "global_batch_size": placement.global_batch,
            "learning_rate": placement.learning_rate, "lr_schedule": config.lr_schedule,
            "epochs": len(fitted.history.get("loss", [])),
            "resumed_from_epoch": fitted.resumed_from_epoch, "budget": fitted.budget,
            "training_windows": windows, "validation_windows": validation_windows}


def save(tf, model, folder: pathlib.Path, statistics_dir: pathlib.Path) -> None:
    """model.keras, characters.json and saved_model/ (serving_default and step)."""
    from edgepipe.models import char_lstm

    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / artifacts.KERAS_MODEL)
    shutil.copy2(statistics_dir / characters.FILE, folder / characters.FILE)
    module = tf.Module()
    module.variables_to_save = list(model.variables)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="tokens")])
    def serve(tokens):
        return {"logits": model(tokens, training=False)}

    module.serve = serve
    module.step = char_lstm.step_function(tf, model)
    tf.saved_model.save(module, str(folder / artifacts.SAVED_MODEL),
                        signatures={"serving_default": serve, "step": module.step})
