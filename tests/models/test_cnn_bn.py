"""The batch-normalised CNN builder: shapes, exact size, float32 output under mixed precision."""

from __future__ import annotations

import numpy as np

from edgepipe.models import build, cnn_bn


def test_default_shape_and_exact_parameter_count():
    model = cnn_bn.build((28, 28, 1), 10, mean=72.9, variance=90.0**2)
    assert model.output_shape == (None, 10)
    convs = 9 * 1 * 32 + 9 * 32 * 32 + 9 * 32 * 64 + 9 * 64 * 64  # no conv bias: BN has it
    batch_norms = 4 * (32 + 32 + 64 + 64 + 128)  # gamma, beta, moving mean and variance
    dense = 7 * 7 * 64 * 128 + (128 * 10 + 10)
    assert model.count_params() == convs + batch_norms + dense == 468_778
    probabilities = model.predict(
        np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype("float32"), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_options_change_the_architecture():
    model = build("cnn_bn", input_shape=(32, 32, 3), num_classes=4, mean=0.0, variance=1.0,
                  filters=(8, 16, 16), convs_per_block=1, dense_units=8, dropout=0.0,
                  block_dropout=0.0)
    assert model.output_shape == (None, 4)
    assert [layer.name for layer in model.layers if "pool" in layer.name] == [
        "block1_pool", "block2_pool", "block3_pool"]
    assert model.get_layer("flatten").output_shape == (None, 4 * 4 * 16)
    assert not any("dropout" in layer.name for layer in model.layers)


def test_output_stays_float32_under_mixed_precision():
    from edgepipe.models.keras import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = cnn_bn.build((28, 28, 1), 10, mean=0.0, variance=1.0, filters=(8,))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert model.output.dtype == "float32"
