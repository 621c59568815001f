"""The tf.data input pipeline: (model input, label) batches of a split, for every stage that
fits a model (train, and quantize's QAT and pruning fine-tuning).

Inputs follow the model's model.json (edgepipe.contracts.model_inputs states the rules in
numpy; the sequence padding rule is restated here as TensorFlow ops): float32 images and
sequences, int32 token ids of texts. Decoded examples are cached (images as uint8, a quarter
of float32's memory, cast per batch), so only the first epoch pays for decoding.
benchmarks/input_pipeline.py measures this against in-memory arrays. TensorFlow is passed in
by the caller, which imports it lazily.
"""

from __future__ import annotations

from typing import Any, Sequence

from edgepipe.components.shared import examples_io
from edgepipe.contracts import model_inputs


def pad_sequence_tensor(tf, series, length: int, padding: str = "pre",
                        padding_value: float | Sequence[float] = 0.0):
    """model_inputs.pad_sequences' rule for one [steps, C] tensor inside a tf.data map."""
    model_inputs.check_padding(padding)
    series = tf.convert_to_tensor(series, tf.float32)
    kept = series[-length:] if padding == "pre" else series[:length]
    missing = length - tf.shape(kept)[0]
    fill = tf.broadcast_to(tf.constant(padding_value, tf.float32), [missing, tf.shape(kept)[1]])
    padded = tf.concat([fill, kept] if padding == "pre" else [kept, fill], axis=0)
    return tf.ensure_shape(padded, [length, series.shape[-1]])


def dataset(tf, examples, split: str, model_info: dict[str, Any], batch_size: int,
            seed: int | None = None, shuffle_buffer: int = 0, repeat: bool = False,
            input_context=None, drop_remainder: bool = False):
    """(model input, label) batches of one split of an Examples artifact.

    `shuffle_buffer` > 0 shuffles with `seed` (reshuffled every epoch); `repeat` repeats
    forever (fit then counts steps, and every batch is full). With an InputContext of several
    input pipelines (multi-worker training) each pipeline reads its own shard; without one
    the dataset is sharded by element, so Keras can split it among replicas.
    """
    data = _elements(tf, examples, split, model_info, input_context).cache()
    if shuffle_buffer:
        data = data.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
        drop_remainder = True
    data = data.batch(batch_size, drop_remainder=drop_remainder)
    if model_info["input_feature"] != "text":  # token ids stay int32
        data = data.map(lambda values, labels: (tf.cast(values, tf.float32), labels),
                        num_parallel_calls=tf.data.AUTOTUNE)
    data = data.prefetch(tf.data.AUTOTUNE)
    if input_context is None:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        data = data.with_options(options)
    return data


def _elements(tf, examples, split: str, model_info: dict[str, Any], input_context):
    """Unbatched (model input, label) pairs of this input pipeline's shard: uint8 images,
    padded float32 sequences, int32 token ids (texts are small: tokenised in Python by the one
    tokenizer)."""
    feature = model_info["input_feature"]
    if feature == "text":
        split_data = examples_io.load_numpy(examples, split)
        data = tf.data.Dataset.from_tensor_slices(
            (model_inputs.prepare(model_info, split_data["text"]), split_data["label"]))
    else:
        data = examples_io.as_dataset(examples, split)
    if input_context is not None and input_context.num_input_pipelines > 1:
        data = data.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if feature == "text":
        return data
    if feature == "sequence":
        length = int(model_info["input_shape"][0])
        padding = model_info.get("padding", "pre")
        padding_value = model_info.get("padding_value", 0.0)

        def element(record):
            return (pad_sequence_tensor(tf, record["sequence"], length, padding, padding_value),
                    record["label"])
    elif model_info.get("rgb_to_gray"):  # an RGB-input model trained on gray images
        def element(record):
            return tf.image.grayscale_to_rgb(record[feature]), record["label"]
    else:
        def element(record):
            return record[feature], record["label"]
    return data.map(element, num_parallel_calls=tf.data.AUTOTUNE)
