"""A 1-D convolutional network for sequences (sensor series, forecasting windows).

Input: a fixed-length (padded, see edgepipe.contracts.model_inputs) sequence [steps, channels]
of raw float32 values, normalised per channel inside the model. Then one causal Conv1D block
per entry of `filters` (the kernel sees only the current and earlier steps; `dilation`
doubles per block, so a few blocks cover a long window), then the last step's features and
the mean over all steps, concatenated, an optional dense layer, and the softmax output (forecasting and regression
replace it: components/shared/task_heads.py). Builtin TFLite ops only (CONV_2D, MEAN,
CONCATENATION, FULLY_CONNECTED), full int8 included.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.models import blocks
from edgepipe.models.keras import keras


def build(
    input_shape: Sequence[int],
    num_classes: int,
    mean,
    variance,
    filters: Sequence[int] = (32, 32, 32),
    kernel_size: int = 3,
    dilation: bool = True,
    dense_units: int = 64,
    activation: str = "relu",
    normalization: str = "none",
    dropout: float = 0.1,
    residual: bool = False,
) -> keras.Model:
    """Returns an uncompiled model from a raw float32 sequence to class probabilities."""
    blocks.check("conv1d", activation, normalization, dropout, residual)
    if not filters:
        raise ValueError("conv1d: model option `filters` is empty; give one width per "
                         "convolution block, e.g. filters = [32, 32].")
    if kernel_size < 1:
        raise ValueError(f"conv1d: kernel_size {kernel_size} must be at least 1.")
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="sequence")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalize")(inputs)
    for index, width in enumerate(filters, start=1):
        name = f"conv{index}"
        y = keras.layers.Conv1D(width, kernel_size, padding="causal",
                                dilation_rate=2 ** (index - 1) if dilation else 1,
                                activation=activation, name=name)(x)
        y = blocks.normalize(y, normalization, name)
        x = blocks.shortcut(x, y, name) if residual else y
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{index}")(x)
    last = keras.layers.Cropping1D((int(input_shape[0]) - 1, 0), name="last_step")(x)
    x = keras.layers.Concatenate(name="features")([
        keras.layers.Flatten(name="last_features")(last),
        keras.layers.GlobalAveragePooling1D(name="mean_features")(x)])
    if dense_units:
        x = keras.layers.Dense(dense_units, activation=activation, name="dense")(x)
    return keras.Model(inputs, blocks.classifier(x, num_classes), name="conv1d")
