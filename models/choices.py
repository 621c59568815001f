"""The values of the options every built-in builder shares, checked without importing Keras.

The config loader checks `[train.model_options]` against these before anything runs, so a
misspelt activation is a config error naming the key, not a failure after ingest.

    activation     the non-linearity of the hidden layers
    normalization  "batch" (BatchNormalization), "layer" (LayerNormalization) or "none"
    dropout        the fraction of units dropped in training, 0 <= dropout < 1
    residual       add each block's input to its output (a learned 1x1 projection when the
                   widths differ)
"""

from __future__ import annotations

from typing import Any

# tf_keras names; each converts to builtin TFLite ops (tests/models/test_options.py).
ACTIVATIONS = ("relu", "relu6", "gelu", "swish", "tanh", "sigmoid", "elu", "selu")
NORMALIZATIONS = ("batch", "layer", "none")


def check(model_options: dict[str, Any]) -> None:
    """Raise ValueError naming the option whose value no builder accepts."""
    activation = model_options.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is not one of {list(ACTIVATIONS)}")
    normalization = model_options.get("normalization", "none")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization {normalization!r} is not one of "
                         f"{list(NORMALIZATIONS)}")
    dropout = model_options.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
            0 <= dropout < 1):
        raise ValueError(f"dropout {dropout!r} must be a number with 0 <= dropout < 1")
    residual = model_options.get("residual", False)
    if not isinstance(residual, bool):
        raise ValueError(f"residual {residual!r} must be true or false")
