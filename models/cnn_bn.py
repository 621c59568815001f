"""A stronger convolutional classifier: conv-conv-pool blocks with batch normalisation.

Each block is two 3x3 convolutions (batch normalisation, ReLU) and a 2x2 max pool, followed by
dropout; then a dense layer and the softmax output. With the default two blocks of 32 and 64
filters it has about 470k parameters on 28x28x1 inputs. The convolutions have no bias: the
batch normalisation after them supplies it, and the TFLite converter folds each batch
normalisation into its convolution, so the deployed model is as small as a plain CNN of the
same shape and quantizes to int8 as one conv op per layer.

Options shared with the other builders (models/choices.py): `normalization` ("batch" by
default; "layer", or "none", which gives the convolutions their bias back), `activation`
(ReLU by default), `residual` (each block adds its input, through a 1x1 convolution when the
filter counts differ, before the last activation of the block, as in ResNet) and `dropout`.
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
    convs_per_block: int = 2,
    kernel_size: int = 3,
    block_dropout: float = 0.25,
    dense_units: int = 128,
    dropout: float = 0.4,
    rgb_to_gray: bool = False,
    activation: str = "relu",
    normalization: str = "batch",
    residual: bool = False,
) -> keras.Model:
    """Returns an uncompiled model from raw float32 pixels to class probabilities.

    `filters` gives one block per entry; `block_dropout` follows each block's pooling and
    `dropout` the dense layer. `mean`/`variance` are the raw pixels' training statistics.
    `rgb_to_gray`: `input_shape` is [H, W, 3] and the model converts RGB to gray first.
    """
    blocks.check("cnn_bn", activation, normalization, dropout, residual)
    inputs, x = image_input(input_shape, rgb_to_gray)
    x = keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(x)
    for block, count in enumerate(filters, start=1):
        y = x
        for conv in range(1, convs_per_block + 1):
            name = f"block{block}_conv{conv}"
            y = keras.layers.Conv2D(count, kernel_size, padding="same",
                                    use_bias=normalization == "none", name=name)(y)
            y = blocks.normalize(y, normalization, name)
            if residual and conv == convs_per_block:
                y = blocks.shortcut(x, y, f"block{block}", convolution=True)
            y = blocks.activate(y, activation, name)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(y)
        if block_dropout:
            x = keras.layers.Dropout(block_dropout, name=f"block{block}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, use_bias=normalization == "none", name="dense")(x)
    x = blocks.activate(blocks.normalize(x, normalization, "dense"), activation, "dense")
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = blocks.classifier(x, num_classes)
    return keras.Model(inputs, outputs, name="cnn_bn")
