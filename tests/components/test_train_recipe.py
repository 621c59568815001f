"""Training recipe options: label smoothing, translation augmentation in tf.data, and the
float32 copy a mixed-precision model is saved as (so every TFLite variant converts).

Each trains for one real epoch on the session's tiny Fashion-MNIST sample.
"""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from edgepipe.components.shared import examples_io, input_pipeline
from edgepipe.components.train import stage as train

SMALL = {"epochs": 1, "batch_size": 32,
         "model_options": {"filters": [8], "dense_units": 16}}


@pytest.fixture(scope="module")
def bf16_smoothed_model(run_stage, examples_artifact, statistics_artifacts):
    """cnn_bn trained under mixed_bfloat16 with label smoothing and translation."""
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    config = {**SMALL, "model": "cnn_bn", "precision": "mixed_bfloat16",
              "label_smoothing": 0.1, "augment": "translate", "augment_pixels": 2,
              "model_options": {"filters": [8], "dense_units": 16, "block_dropout": 0.0,
                                "dropout": 0.0}}
    properties, artifacts = run_stage("train", inputs, config)
    return properties, artifacts["model"]


def test_recipe_trains_and_records_throughput(bf16_smoothed_model):
    properties, model_dir = bf16_smoothed_model
    assert np.isfinite(properties["final"]["loss"])
    assert 0.0 <= properties["final"]["accuracy"] <= 1.0  # the sparse metric still works
    assert properties["images_per_second"] > 0


def test_mixed_precision_model_is_saved_as_a_float32_copy_that_converts_to_int8(
        bf16_smoothed_model, examples_artifact):
    from edgepipe.components.quantize import convert, measure
    from edgepipe.models.keras import keras

    _, model_dir = bf16_smoothed_model
    model = keras.models.load_model(model_dir.path / "model.keras")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    test = examples_io.load_numpy(examples_artifact.path, "test")
    images = test["image"][:20].astype(np.float32)
    content = convert.convert(model, "int8", images[:10])
    probabilities = measure.run(content, images, warmup=0).outputs
    agreement = np.mean(probabilities.argmax(1) == model.predict(images, verbose=0).argmax(1))
    assert agreement >= 0.8
    assert measure.builtin_only(measure.op_names(content))


def test_translate_shifts_whole_images_with_zero_fill_on_the_train_split_only(
        examples_artifact):
    import tensorflow as tf

    info = {"input_feature": "image"}
    plain = next(iter(input_pipeline.dataset(tf, examples_artifact.path, "train", info, 64)))
    shifted = next(iter(input_pipeline.dataset(tf, examples_artifact.path, "train", info, 64,
                                               augment="translate", augment_pixels=2)))
    originals, moved = plain[0].numpy(), shifted[0].numpy()
    np.testing.assert_array_equal(plain[1].numpy(), shifted[1].numpy())
    moved_count = 0
    for original, image in zip(originals, moved):
        padded = np.pad(original, [(2, 2), (2, 2), (0, 0)])
        offsets = [(row, column) for row in range(5) for column in range(5)
                   if np.array_equal(padded[row:row + 28, column:column + 28], image)]
        assert offsets, "every augmented image is its original shifted by at most 2 px"
        moved_count += (2, 2) not in offsets
    assert moved_count > len(moved) // 2  # most images really moved


@pytest.mark.parametrize("config, message", [
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"augment": "rotate"}, "augment"),
    ({"augment_pixels": 0}, "augment_pixels"),
])
def test_recipe_options_are_validated(config, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        train.Config.model_validate(config)


def test_smoothed_loss_matches_one_hot_categorical_crossentropy():
    import tensorflow as tf

    from edgepipe.components.shared import model_builder
    from edgepipe.models.keras import keras

    labels = tf.constant([0, 2, 1])
    probabilities = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    loss = model_builder.smoothed_sparse_crossentropy(keras, 0.1)(labels, probabilities)
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1,
                                                    reduction="none")(
        tf.one_hot(labels, 3), probabilities)
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-6)


def test_images_read_into_memory_are_the_records_the_stream_gives_in_its_order(
        examples_artifact, monkeypatch):
    """Training reads a small image split into memory at once; a split over the limit
    streams from the shards. Both give the same records in the same order, so a seeded
    shuffle, and with it the trained model, does not depend on which path ran."""
    import tensorflow as tf

    info = {"input_feature": "image"}

    def batches():
        data = input_pipeline.dataset(tf, examples_artifact.path, "train", info, 256,
                                      seed=3, shuffle_buffer=1000)
        return [(images.numpy(), labels.numpy()) for images, labels in data]

    loads = []
    load_numpy = examples_io.load_numpy
    monkeypatch.setattr(examples_io, "load_numpy",
                        lambda *args: loads.append(args) or load_numpy(*args))
    in_memory = batches()
    assert len(loads) == 1  # the in-memory path ran
    monkeypatch.setattr(input_pipeline, "IN_MEMORY_IMAGE_BYTES", 0)
    streamed = batches()
    assert len(loads) == 1  # and then the stream
    assert sum(len(labels) for _, labels in in_memory) == examples_io.split_size(
        examples_artifact.path, "train")
    for (memory_images, memory_labels), (stream_images, stream_labels) in zip(in_memory,
                                                                              streamed):
        np.testing.assert_array_equal(memory_images, stream_images)
        np.testing.assert_array_equal(memory_labels, stream_labels)
