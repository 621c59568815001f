"""The text LSTM builder: token ids in, class probabilities out, exact sizes, no masking."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe import models


def build(**options):
    return models.build("text_lstm", input_shape=[20], num_classes=3, vocabulary_size=100,
                        **options)


@pytest.mark.parametrize("options, params", [
    # embedding 100*8 + LSTM 4*(16*(8+16)+16) + dense 16*3+3
    ({"embedding_dim": 8, "units": [16]}, 800 + 1600 + 51),
    # + Conv1D 3*8*4+4, and the LSTM reads 4 channels: 4*(16*(4+16)+16)
    ({"embedding_dim": 8, "units": [16], "conv_filters": 4}, 800 + 100 + 1344 + 51),
    # two LSTMs: 4*(16*(8+16)+16) + 4*(8*(16+8)+8), dense 8*5+5, output 5*3+3
    ({"embedding_dim": 8, "units": [16, 8], "dense_units": 5}, 800 + 1600 + 800 + 45 + 18),
])
def test_parameter_counts_are_exact(options, params):
    assert build(**options).count_params() == params


def test_takes_int32_token_ids_and_returns_float32_probabilities():
    model = build(embedding_dim=8, units=[16, 8])
    assert model.input.dtype == "int32" and model.input_names == ["tokens"]
    assert model.input_shape == (None, 20) and model.output_shape == (None, 3)
    assert model.get_layer("lstm1").output_shape == (None, 20, 16)  # all but the last: sequences
    assert model.get_layer("embedding").get_config()["mask_zero"] is False  # masks: WHILE loops
    ids = np.random.default_rng(0).integers(0, 100, size=(4, 20)).astype(np.int32)
    probabilities = model(ids, training=False).numpy()
    assert probabilities.dtype == np.float32 and probabilities.shape == (4, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_bad_options_say_what_to_fix():
    with pytest.raises(ValueError, match="units"):
        build(units=[])
    with pytest.raises(ValueError, match="vocabulary_size 2"):
        models.build("text_lstm", input_shape=[20], num_classes=3, vocabulary_size=2)
    assert models.INPUT_FEATURES["text_lstm"] == ("text",)
