"""The options every built-in builder shares (models/choices.py): normalization batch, layer or
none, activation, residual connections, dropout. Each builder with each option builds, trains
one step (every weight changes), converts to full-int8 TFLite with builtin ops only and runs
on LiteRT; what cannot be all-int8 (an ELU keeps a float island) and what QAT cannot annotate
(layer normalisation, ELU and SELU activations, LSTMs) is asserted as documented in
docs/training.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe import models
from edgepipe.models import choices

BUILDERS = {
    "mlp": dict(input_shape=(1, 6), num_classes=3, mean=[1.0] * 6, variance=[4.0] * 6,
                hidden_units=(8, 8)),
    "cnn": dict(input_shape=(8, 8, 1), num_classes=3, mean=100.0, variance=900.0,
                filters=(4, 8), dense_units=8),
    "cnn_bn": dict(input_shape=(8, 8, 1), num_classes=3, mean=100.0, variance=900.0,
                   filters=(4, 8), dense_units=8),
    "lstm": dict(input_shape=(5, 3), num_classes=3, mean=[0.0] * 3, variance=[1.0] * 3,
                 units=(6, 6), dense_units=6),
    "text_lstm": dict(input_shape=(5,), num_classes=3, vocabulary_size=12, units=(6, 6),
                      dense_units=6, embedding_dim=4),
}
SINGLE = [{"normalization": "batch"}, {"normalization": "layer"}, {"normalization": "none"},
          {"activation": "gelu"}, {"residual": True}, {"dropout": 0.5}]
# LSTM conversions are slow: each option once, in two models.
RECURRENT = [{"normalization": "batch", "activation": "gelu", "dropout": 0.5},
             {"normalization": "layer", "residual": True}]
CASES = ([(name, options) for name in ("mlp", "cnn", "cnn_bn") for options in SINGLE]
         + [("mlp", {"activation": activation}) for activation in choices.ACTIVATIONS
            if activation != "gelu"]
         + [(name, options) for name in ("lstm", "text_lstm") for options in RECURRENT])
# Combinations whose int8 model keeps float tensors between its ops (a DEQUANTIZE/QUANTIZE
# island): TFLite has no int8 ELU kernel, so the converter runs ELU in float.
NOT_ALL_INT8 = {("activation", "elu")}


def case_id(case) -> str:
    name, options = case
    return name + "-" + "-".join(f"{key}={value}" for key, value in options.items())


def batch(name: str, count: int = 8):
    rng = np.random.default_rng(0)
    shape = BUILDERS[name]["input_shape"]
    if name == "text_lstm":
        return rng.integers(0, 12, size=(count, *shape)).astype("int32")
    scale = 30.0 if name.startswith("cnn") else 1.0
    return (rng.normal(size=(count, *shape)) * scale + 100.0 * (scale > 1)).astype("float32")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_each_option_builds_trains_one_step_and_converts_to_builtin_int8(case):
    from ai_edge_litert.interpreter import Interpreter

    from edgepipe.components.quantize import qat
    from edgepipe.components.quantize.convert import convert
    from edgepipe.components.quantize.measure import builtin_only, op_names
    from edgepipe.models.keras import keras

    name, options = case
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    model = models.build(name, **BUILDERS[name], **options)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    inputs = batch(name)
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    loss = model.train_on_batch(inputs, np.arange(len(inputs)) % 3)
    assert np.isfinite(loss)
    for weight, old in zip(model.trainable_weights, before):
        assert not np.array_equal(old, weight.numpy()), f"{weight.name} did not change"

    content = convert(model, "int8", inputs)
    ops = op_names(content)
    assert builtin_only(ops), ops
    # A float island is a DEQUANTIZE ... QUANTIZE pair inside the int8 model (its input and
    # output are int8 here); the fused LSTM's own intermediates are not ops of their own.
    island = any(item in NOT_ALL_INT8 for item in options.items())
    assert ("DEQUANTIZE" in ops) == island, ops
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    feed = interpreter.get_input_details()[0]
    interpreter.set_tensor(feed["index"], np.zeros(feed["shape"], feed["dtype"]))
    interpreter.invoke()

    unannotatable = qat.unannotatable_layers(model)
    expect_qat = ("lstm" not in name and options.get("normalization") != "layer"
                  and options.get("activation") not in ("elu", "selu"))
    assert (not unannotatable) == expect_qat, unannotatable


@pytest.mark.parametrize("options, message", [
    ({"activation": "leaky"}, "activation 'leaky' is not one of"),
    ({"normalization": "group"}, "normalization 'group' is not one of"),
    ({"dropout": 1.0}, "0 <= dropout < 1"),
    ({"residual": "yes"}, "residual 'yes' must be true or false"),
])
def test_bad_option_values_are_rejected_at_config_load(options, message):
    for name in ("mlp", "cnn", "cnn_bn", "lstm", "text_lstm"):
        with pytest.raises(ValueError, match=message):
            models.check_options(name, options)


def test_residual_lstm_needs_two_layers():
    with pytest.raises(ValueError, match="residual = true.*two or more"):
        models.build("lstm", **{**BUILDERS["lstm"], "units": (6,)}, residual=True)


def test_the_defaults_are_the_models_documented_before_the_options():
    """The options' defaults leave the built-ins as they were (parameter counts)."""
    assert models.build("cnn", input_shape=(28, 28, 1), num_classes=10, mean=0.0,
                        variance=1.0).count_params() == 421_642
    assert models.build("cnn_bn", input_shape=(28, 28, 1), num_classes=10, mean=0.0,
                        variance=1.0).count_params() == 468_778


def test_mlp_takes_a_table_row_and_normalises_it_per_column():
    from edgepipe.models.keras import keras

    mean, variance = [10.0, 0.1, 1000.0], [4.0, 0.0004, 40000.0]
    model = models.build("mlp", input_shape=(1, 3), num_classes=2, mean=mean,
                         variance=variance, hidden_units=(4,))
    assert model.input_shape == (None, 1, 3) and model.output_shape == (None, 2)
    normalize = keras.Model(model.input, model.get_layer("normalize").output)
    row = np.array([[[12.0, 0.12, 1200.0]]], "float32")  # one std above the mean each
    np.testing.assert_allclose(normalize.predict(row, verbose=0), 1.0, rtol=1e-4)
    assert models.INPUT_FEATURES["mlp"] == ("sequence", "image")
