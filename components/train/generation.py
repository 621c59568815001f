"""The train stage's generation piece: a character model trained with teacher forcing on
windows of the corpus, under the same tf.distribute placement, fit loop (resume, NaN stop,
progress, TensorBoard) and time budget as every model.

The train split is one stream of character ids (edgepipe.contracts.characters: each document
after [START]); a training example is a window of `[train] sequence_length` + 1 ids starting
at a random position of it: the model reads the first `sequence_length` and learns each next
one. Random starts (drawn from the pipeline seed; each worker of a cluster draws its own)
give every epoch new windows where fixed cuts would repeat the same ones: on the fortunes
corpus fixed cuts overfit (validation 0.14 nats behind training) before the model learnt
enough (docs/measured.md). An epoch is as many windows as fixed cuts give. Validation
windows are the fixed cuts of the validation split.

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


def dataset(tf, rows: np.ndarray, batch: int):
    """(inputs, next ids) batches of fixed windows, in order (validation)."""
    data = tf.data.Dataset.from_tensor_slices(rows).batch(batch)
    return data.map(lambda rows: (rows[:, :-1], rows[:, 1:])).prefetch(tf.data.AUTOTUNE)


def random_windows(tf, ids: np.ndarray, length: int, batch: int, seed: int,
                   input_context=None):
    """Endless (inputs, next ids) batches of windows of `length` + 1 ids starting at random
    positions of the stream; a worker's draws depend on the seed and its input pipeline id."""
    if len(ids) < length + 2:
        raise ValueError(f"the train stream holds {len(ids)} ids, fewer than one window of "
                         f"{length + 1}; lower [train] sequence_length or use a larger corpus.")
    worker = input_context.input_pipeline_id if input_context is not None else 0
    stream = tf.constant(ids, tf.int32)
    starts = len(ids) - length  # every window start that leaves length + 1 ids
    data = tf.data.Dataset.random(seed=seed + 1000 * worker).map(
        lambda draw: stream[draw % starts:draw % starts + length + 1])
    data = data.batch(batch, drop_remainder=True)
    return data.map(lambda rows: (rows[:, :-1], rows[:, 1:])).prefetch(tf.data.AUTOTUNE)


def datasets(tf, distribute, placement, train_ids: np.ndarray, validation_rows: np.ndarray,
             length: int, seed: int):
    """The training input (random windows, per worker) and validation (or None)."""
    training = distribute.sharded_dataset(
        tf, placement.strategy,
        lambda input_context, batch: random_windows(tf, train_ids, length, batch, seed,
                                                    input_context),
        placement.global_batch)
    validation = (dataset(tf, validation_rows, placement.global_batch)
                  if len(validation_rows) else None)
    return training, validation


def split_stream(examples, split: str, index: dict) -> np.ndarray:
    _, texts = examples_io.load_texts(examples, split)
    return characters.stream(texts, index)


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
    train_ids = split_stream(examples, "train", index)
    train_windows = max(0, (len(train_ids) - 1) // length)  # random ones an epoch
    validation_rows = windows(split_stream(examples, "validation", index), length)
    placement = distribute.place(context.runtime, config.batch_size, config.learning_rate,
                                 config.lr_scaling)
    if train_windows < placement.global_batch:
        raise ValueError(
            f"{examples}: the train split gives {train_windows} windows of "
            f"{length + 1} characters, fewer than one global batch ({placement.global_batch}); "
            "lower [train] sequence_length or batch_size, or use a larger corpus.")
    steps = max(1, train_windows // placement.global_batch)
    context.log.info("training %s on %d windows of %d characters (%s), %d replica(s), "
                     "global batch %d", config.model, train_windows, length,
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
    training, validation = datasets(tf, distribute, placement, train_ids, validation_rows,
                                    length, context.seed)
    fitted = fit.fit(tf, keras, model, training, validation, steps, config, context,
                     placement.chief, placement.role, global_batch=placement.global_batch)
    model_dir = stage._save(tf, model, spec, fitted, placement, outputs["model"], context,
                            exporter=lambda tf, model, spec, folder: save(
                                tf, model, folder, pathlib.Path(inputs["statistics"].path)))
    info = model_info(model, config, spec, placement, fitted, train_windows,
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
        "training_windows": train_windows,
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
