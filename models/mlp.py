"""A feed-forward network (multi-layer perceptron) for feature vectors.

Input: a table row of N numbers, as the csv source stores it with `columns_as = "channels"`
(a sequence of 1 step x N channels), or any fixed-shape sequence or image, flattened. The raw
values are normalised per channel inside the model (mean and variance of the training split),
so a client sends the row as it is in the CSV file. Then one dense block per entry of
`hidden_units` (dense, optional batch or layer normalisation, activation, optional residual
connection, dropout) and the softmax output. Converts to builtin-op TFLite, full int8 included.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.models import blocks
from edgepipe.models.color import image_input
from edgepipe.models.keras import keras


def build(
    input_shape: Sequence[int],
    num_classes: int,
    mean,
    variance,
    hidden_units: Sequence[int] = (64, 32),
    activation: str = "relu",
    normalization: str = "none",
    dropout: float = 0.2,
    residual: bool = False,
    rgb_to_gray: bool = False,
) -> keras.Model:
    """Returns an uncompiled model from raw float32 features to class probabilities.

    `mean` and `variance` are per channel (a list, sequences and table rows) or one number
    (images). `hidden_units` gives one dense block per entry; `residual` adds each block's
    input to its output (through a learned projection when the widths differ).
    """
    blocks.check("mlp", activation, normalization, dropout, residual)
    if not hidden_units:
        raise ValueError("mlp: model option `hidden_units` is empty; give one width per hidden "
                         "layer, e.g. hidden_units = [64, 32].")
    if len(input_shape) == 3:  # an image ([train] input_color = "rgb": see models/color.py)
        inputs, x = image_input(input_shape, rgb_to_gray)
    else:
        inputs = x = keras.Input(shape=tuple(input_shape), dtype="float32", name="sequence")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalize")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(hidden_units, start=1):
        x = blocks.dense_block(x, units, activation, normalization, dropout, residual,
                               f"dense{index}")
    return keras.Model(inputs, blocks.classifier(x, num_classes), name="mlp")
