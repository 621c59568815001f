"""The LSTM builders: shapes, exact sizes per option, per-channel normalisation, and that
the default (unidirectional) model converts to one fused LSTM op with builtin ops only."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.models import build, lstm

STEPS, CHANNELS, CLASSES = 29, 12, 9
MEAN = np.linspace(-0.5, 0.9, CHANNELS).tolist()
STD = np.linspace(0.1, 0.5, CHANNELS).tolist()
VARIANCE = [value**2 for value in STD]


def lstm_params(units: int, inputs: int) -> int:
    """Four gates, each with input and recurrent kernels and a bias."""
    return 4 * (units * (inputs + units) + units)


def make(**options):
    return lstm.build((STEPS, CHANNELS), CLASSES, mean=MEAN, variance=VARIANCE, **options)


@pytest.mark.parametrize("options, expected", [
    ({}, lstm_params(64, 12) + 64 * 9 + 9),
    ({"units": (32, 16)}, lstm_params(32, 12) + lstm_params(16, 32) + 16 * 9 + 9),
    ({"units": (32,), "bidirectional": True}, 2 * lstm_params(32, 12) + 64 * 9 + 9),
    ({"conv_filters": 16}, (3 * 12 * 16 + 16) + lstm_params(64, 16) + 64 * 9 + 9),
    ({"dense_units": 32}, lstm_params(64, 12) + (64 * 32 + 32) + 32 * 9 + 9),
])
def test_output_shape_and_exact_parameter_count(options, expected):
    model = make(**options)
    assert model.input_shape == (None, STEPS, CHANNELS)
    assert model.input.name.startswith("sequence")
    assert model.output_shape == (None, CLASSES)
    assert model.count_params() == expected
    probabilities = model.predict(
        np.random.default_rng(0).normal(size=(4, STEPS, CHANNELS)).astype("float32"), verbose=0)
    assert probabilities.shape == (4, CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_registry_knows_lstm_and_empty_units_is_an_error():
    model = build("lstm", input_shape=(STEPS, CHANNELS), num_classes=3, mean=MEAN,
                  variance=VARIANCE, units=(8,), dropout=0.0)
    assert model.output_shape == (None, 3)
    assert [layer.name for layer in model.layers] == ["sequence", "normalize", "lstm1",
                                                     "probabilities"]
    with pytest.raises(ValueError, match="units.*empty"):
        make(units=())


def test_normalisation_is_per_channel():
    from edgepipe.models.keras import keras

    model = make()
    normalize = keras.Model(model.input, model.get_layer("normalize").output)
    series = np.stack([np.tile(MEAN, (STEPS, 1)), np.tile(np.add(MEAN, STD), (STEPS, 1))])
    normalized = normalize.predict(series.astype("float32"), verbose=0)
    np.testing.assert_allclose(normalized[0], 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized[1], 1.0, atol=1e-4)


def test_default_model_converts_to_one_fused_lstm_op_with_builtins_only():
    import tensorflow as tf

    from edgepipe.components.quantize.measure import builtin_only, op_names

    model = make(units=(16,))
    function = tf.function(lambda values: model(values, training=False)).get_concrete_function(
        tf.TensorSpec([1, STEPS, CHANNELS], tf.float32))  # a fixed batch keeps the LSTM fused
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    names = op_names(converter.convert())
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in names, names
    assert "WHILE" not in names and builtin_only(names), names
