"""model_inputs: the one padding rule, identical in numpy and in tf.data, and input specs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepipe.contracts import model_inputs
from edgepipe.components.shared import input_pipeline
from edgepipe.components.shared import input_spec

SERIES = [np.arange(6, dtype=np.float32).reshape(3, 2) + 1,   # 3 steps
          np.arange(10, dtype=np.float32).reshape(5, 2) + 1]  # 5 steps
SEQUENCE_MODEL = {"input_feature": "sequence", "input_shape": [4, 2], "padding": "pre"}


def test_pre_padding_pads_before_and_keeps_the_last_steps():
    batch = model_inputs.prepare(SEQUENCE_MODEL, SERIES)
    assert batch.dtype == np.float32 and batch.shape == (2, 4, 2)
    np.testing.assert_array_equal(batch[0], [[0, 0], [1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(batch[1], SERIES[1][-4:])  # the first step is dropped


def test_post_padding_pads_after_and_keeps_the_first_steps():
    batch = model_inputs.prepare({**SEQUENCE_MODEL, "padding": "post", "padding_value": -1.0},
                                 np.array(SERIES, dtype=object))
    np.testing.assert_array_equal(batch[0], [[1, 2], [3, 4], [5, 6], [-1, -1]])
    np.testing.assert_array_equal(batch[1], SERIES[1][:4])


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_tensorflow_rule_equals_the_numpy_rule(padding):
    import tensorflow as tf

    expected = model_inputs.pad_sequences(SERIES, 4, 2, padding, 0.5)
    for series, row in zip(SERIES, expected):
        padded = input_pipeline.pad_sequence_tensor(tf, tf.constant(series), 4, padding, 0.5)
        np.testing.assert_array_equal(padded.numpy(), row)


def test_images_are_cast_and_shapes_checked():
    images = np.full((2, 28, 28, 1), 255, dtype=np.uint8)
    model = {"input_feature": "image", "input_shape": [28, 28, 1]}
    batch = model_inputs.prepare(model, images)
    assert batch.dtype == np.float32 and batch.max() == 255.0
    with pytest.raises(ValueError, match=r"shape \(32, 32, 1\) but the model takes"):
        model_inputs.prepare(model, np.zeros((1, 32, 32, 1), dtype=np.uint8))


def test_bad_sequences_and_policies_are_named():
    with pytest.raises(ValueError, match=r"sequence 1 has shape \(3, 3\).*\[steps, 2\]"):
        model_inputs.prepare(SEQUENCE_MODEL, [SERIES[0], np.zeros((3, 3))])
    with pytest.raises(ValueError, match="padding 'middle'.*'pre' or 'post'"):
        model_inputs.prepare({**SEQUENCE_MODEL, "padding": "middle"}, SERIES)


def test_input_spec_for_images(examples_artifact, statistics_artifacts):
    spec = input_spec.input_spec(examples_artifact.path, statistics_artifacts["statistics"].path)
    stats = json.loads((statistics_artifacts["statistics"].path / "statistics.json").read_text())
    image = stats["splits"]["train"]["features"]["image"]
    assert spec["input_feature"] == "image" and spec["input_dtype"] == "uint8"
    assert spec["input_shape"] == [28, 28, 1]
    assert spec["normalization"]["mean"] == pytest.approx(image["mean"])
    assert spec["normalization"]["variance"] == pytest.approx(image["std"] ** 2)


def test_input_spec_rejects_unusable_statistics(tmp_path, examples_artifact):
    # A constant input is normal data (issue 27): its std is taken as 1, not refused.
    (tmp_path / "statistics.json").write_text(json.dumps({"splits": {"train": {"features": {
        "image": {"mean": 10.0, "std": 0.0}}}}}))
    spec = input_spec.input_spec(examples_artifact.path, tmp_path)
    assert spec["normalization"] == {"mean": 10.0, "variance": 1.0}
    (tmp_path / "statistics.json").write_text(json.dumps({"splits": {"train": {"features": {
        "image": {"mean": float("nan"), "std": 1.0}}}}}))
    with pytest.raises(ValueError, match="not finite"):
        input_spec.input_spec(examples_artifact.path, tmp_path)
    (tmp_path / "statistics.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot read splits.train.features.image"):
        input_spec.input_spec(examples_artifact.path, tmp_path)
