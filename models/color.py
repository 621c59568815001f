"""Colour conversion inside an image model: a model trained on grayscale images that takes RGB.

Phone cameras and MediaPipe's ImageClassifier deliver RGB (MediaPipe refuses a 1-channel
model). `image_input(..., rgb_to_gray=True)` makes the model take [H, W, 3] RGB pixels and turn
them into the one gray channel it was trained on, with the ITU-R BT.601 luma weights (what
Pillow's convert("L") computes, before rounding) in a frozen 1x1 convolution, which every
TFLite variant converts (CONV_2D) and quantizes. Gray images repeated into three channels give
back the gray image (the weights sum to 1), so training, evaluation and the TFLite
measurements feed the stored grayscale examples that way (edgepipe.contracts.model_inputs).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgepipe.models.keras import keras

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601: R, G, B
LAYER_NAME = "rgb_to_gray"


def image_input(input_shape: Sequence[int], rgb_to_gray: bool = False):
    """(the model's float32 input, the tensor its layers start from).

    With `rgb_to_gray`, `input_shape` is the RGB shape [H, W, 3] and the tensor is [H, W, 1].
    """
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="image")
    if not rgb_to_gray:
        return inputs, inputs
    if tuple(input_shape)[-1] != 3:
        raise ValueError(f"rgb_to_gray needs an RGB input [H, W, 3], not {list(input_shape)}.")
    layer = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name=LAYER_NAME)
    gray = layer(inputs)
    layer.set_weights([np.asarray(LUMA, np.float32).reshape(1, 1, 3, 1)])
    return inputs, gray
