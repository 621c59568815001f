"""Keras model builders, looked up by the name a config gives in `[train] model`.

Every builder takes the input shape, the number of classes, the normalisation statistics of
the raw input (so the model owns its preprocessing: no training/serving skew; a scalar mean
and variance for images, per-channel lists for sequences) and its own keyword options from
the config's `[train.model_options]` table, and returns an uncompiled tf_keras functional
model whose input is the raw feature as float32 and whose output is the class probabilities
(a float32 layer named "probabilities", also under mixed precision). Text builders take
`vocabulary_size` instead of mean and variance, and int32 token ids as input (see
edgepipe.contracts.text_tokens).
"""

from __future__ import annotations

from typing import Any, Callable

from edgepipe.models import cnn, cnn_bn, lstm, text_lstm

BUILDERS: dict[str, Callable[..., Any]] = {
    "cnn": cnn.build,
    "cnn_bn": cnn_bn.build,
    "lstm": lstm.build,
    "text_lstm": text_lstm.build,
}

# The input feature each builder takes (see edgepipe.components.shared.examples_io.INPUT_FEATURES).
INPUT_FEATURES: dict[str, str] = {"cnn": "image", "cnn_bn": "image", "lstm": "sequence",
                                  "text_lstm": "text"}


def build(name: str, **kwargs: Any):
    """Build the model registered under `name`."""
    if name not in BUILDERS:
        raise ValueError(
            f"Unknown model {name!r}. Expected one of {sorted(BUILDERS)}; set [train] model "
            "in the config to one of them."
        )
    return BUILDERS[name](**kwargs)
