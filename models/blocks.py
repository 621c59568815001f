"""Layer blocks the built-in builders share: normalisation, activation, residual connection.

The option values are those of models/choices.py. A normalised layer has no bias of its own
(the normalisation's offset supplies it), so batch normalisation folds into the convolution or
dense layer before it at TFLite conversion. Every block converts to builtin TFLite ops.
"""

from __future__ import annotations

from edgepipe.models import choices
from edgepipe.models.keras import keras


def check(builder: str, activation: str, normalization: str, dropout: float,
          residual: bool) -> None:
    """The builder's own check of the shared options (also run at config load)."""
    try:
        choices.check({"activation": activation, "normalization": normalization,
                       "dropout": dropout, "residual": residual})
    except ValueError as error:
        raise ValueError(f"{builder}: model option {error}") from None


def normalize(x, normalization: str, name: str):
    """`x` through the chosen normalisation over its last axis (channels, units)."""
    if normalization == "batch":
        return keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if normalization == "layer":
        return keras.layers.LayerNormalization(name=f"{name}_ln")(x)
    return x


def activate(x, activation: str, name: str):
    """A separate activation layer (ReLU as keras' ReLU layer, which tfmot can annotate)."""
    if activation == "relu":
        return keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)


def shortcut(block_input, block_output, name: str, convolution: bool = False):
    """block_output + block_input; the input goes through a learned 1x1 projection (a 1x1
    convolution for feature maps, else a dense layer) when the widths differ."""
    width = block_output.shape[-1]
    if block_input.shape[-1] != width:
        if convolution:
            block_input = keras.layers.Conv2D(width, 1, use_bias=False,
                                              name=f"{name}_projection")(block_input)
        else:
            block_input = keras.layers.Dense(width, use_bias=False,
                                             name=f"{name}_projection")(block_input)
    return keras.layers.Add(name=f"{name}_add")([block_output, block_input])


def dense_block(x, units: int, activation: str, normalization: str, dropout: float,
                residual: bool, name: str):
    """Dense -> normalisation -> activation (-> + input) -> dropout."""
    y = keras.layers.Dense(units, use_bias=normalization == "none", name=name)(x)
    y = activate(normalize(y, normalization, name), activation, name)
    if residual:
        y = shortcut(x, y, name)
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return y


def classifier(x, num_classes: int):
    """The softmax output, float32 even under a mixed-precision policy (softmax in half
    precision is lossy)."""
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                              name="probabilities")(x)
