"""Input pipeline of the train stage: the tf.data batches that model.fit reads.

One function, `dataset`, turns a split of an Examples artifact into (model input, label)
batches: float32 images and sequences (padded by components/model_inputs.py), int32 token
ids of texts. Kept apart from components/train.py (stage contract, strategy, fitting,
export) because it is the part to tune on its own: benchmarks/input_pipeline.py measures it
against in-memory arrays. The train stage names this module in its CODE, so editing it
re-runs the stage. TensorFlow is passed in by the caller, which imports it lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components import examples_io, model_inputs

if TYPE_CHECKING:
    from components.train import Config


def dataset(tf, examples, split: str, spec: dict, batch_size: int, config: Config, seed: int,
            input_context=None, drop_remainder: bool = False):
    """(model input, label) batches of one split, through tf.data: float32 images and
    sequences, int32 token ids of texts.

    With an InputContext (training) the split is sharded per input pipeline, shuffled with the
    stage seed and repeated (fit counts steps); without one (validation) it is read once and
    Keras shards it by data. Decoded examples are cached (images as uint8, a quarter of
    float32's memory, cast per batch), so only the first epoch pays for decoding.
    """
    feature = spec["input_feature"]
    if feature == "text":  # small datasets: tokenised in Python by the one tokenizer
        split_data = examples_io.load_numpy(examples, split)
        data = tf.data.Dataset.from_tensor_slices({
            "text": model_inputs.prepare(spec, split_data["text"]),
            "label": split_data["label"]})
    else:
        data = examples_io.as_dataset(examples, split)
    if input_context is not None and input_context.num_input_pipelines > 1:
        data = data.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if feature == "sequence":
        length = spec["input_shape"][0]

        def element(record):
            return (model_inputs.pad_sequence_tensor(tf, record["sequence"], length,
                                                     spec["padding"], spec["padding_value"]),
                    record["label"])
    else:
        def element(record):
            return record[feature], record["label"]
    data = data.map(element, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if input_context is not None:
        data = data.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        data = data.repeat()
        drop_remainder = True  # repeated: every batch is full anyway
    data = data.batch(batch_size, drop_remainder=drop_remainder)
    if feature != "text":  # token ids stay int32
        data = data.map(lambda values, labels: (tf.cast(values, tf.float32), labels),
                        num_parallel_calls=tf.data.AUTOTUNE)
    data = data.prefetch(tf.data.AUTOTUNE)
    if input_context is None:  # the splits may be a single shard: shard by element
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        data = data.with_options(options)
    return data
