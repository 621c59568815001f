"""A small convolutional classifier for images and other grid data.

Two conv/pool blocks, then a dense layer: about 420k parameters on 28x28x1 inputs, which
reaches ~0.92 on full Fashion-MNIST and trains at ~1,300 images/s on two CPU cores.

Options shared with the other builders (models/choices.py): `activation` of the convolutions
and the dense layer, `normalization` after each convolution and the dense layer ("batch" or
"layer"; the layer before it then has no bias), `residual` (each block adds its input to the
convolution's output, through a 1x1 convolution when the filter counts differ) and `dropout`.
The defaults are the plain model above.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.models import blocks
from edgepipe.models.color import image_input
from edgepipe.models.keras import keras


def build(
    input_shape: Sequence[int],
    num_classes: int,
    mean: float,
    variance: float,
    filters: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    dense_units: int = 128,
    dropout: float = 0.3,
    rgb_to_gray: bool = False,
    activation: str = "relu",
    normalization: str = "none",
    residual: bool = False,
) -> keras.Model:
    """Returns an uncompiled model from raw float32 pixels to class probabilities.

    `mean` and `variance` are the raw input's statistics over the training split; the
    Normalization layer applies them, so callers feed raw values (0..255 for images).
    `rgb_to_gray` (set by the train stage for [train] input_color = "rgb" on grayscale data):
    `input_shape` is [H, W, 3] and the model converts RGB to gray first (models/color.py).
    """
    blocks.check("cnn", activation, normalization, dropout, residual)
    inputs, x = image_input(input_shape, rgb_to_gray)
    x = keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(x)
    for index, count in enumerate(filters):
        name = f"conv{index + 1}"
        y = _layer(keras.layers.Conv2D, count, activation, normalization, name,
                   kernel_size=kernel_size, padding="same")(x)
        y = _finish(y, activation, normalization, name)
        x = blocks.shortcut(x, y, name, convolution=True) if residual else y
        x = keras.layers.MaxPooling2D(name=f"pool{index + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = _layer(keras.layers.Dense, dense_units, activation, normalization, "dense")(x)
    x = _finish(x, activation, normalization, "dense")
    outputs = blocks.classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="cnn")


def _layer(kind, units: int, activation: str, normalization: str, name: str, **options):
    """A convolution or dense layer: with its activation and bias when nothing normalises
    its output (the plain model), else linear and without bias."""
    if normalization == "none":
        return kind(units, activation=activation, name=name, **options)
    return kind(units, use_bias=False, name=name, **options)


def _finish(x, activation: str, normalization: str, name: str):
    """The normalisation and activation after a layer made by `_layer`."""
    if normalization == "none":
        return x
    return blocks.activate(blocks.normalize(x, normalization, name), activation, name)
