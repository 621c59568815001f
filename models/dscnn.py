"""A small-footprint keyword spotter: the depthwise-separable CNN of "Hello Edge" (Zhang et
al., 2017, arXiv:1711.07128) on a log-mel spectrogram computed inside the model.

Input: raw float32 PCM [samples] at `sample_rate` in [-1, 1] (models/audio_frontend.py turns
it into a [frames, mel_bins] spectrogram: window_ms, hop_ms, mel_bins, mfcc). Then one regular
convolution (a 10x4 kernel over time x frequency, stride 2x2 as in DS-CNN-S) and `blocks`
depthwise 3x3 + pointwise 1x1 pairs, each with batch normalisation and ReLU, global average
pooling and the class layer. The defaults (64 filters, 4 blocks) hold about 24k parameters,
DS-CNN-S's size; every layer converts to builtin TFLite ops and quantizes to int8.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.models import audio_frontend
from edgepipe.models.keras import keras


def build(
    input_shape: Sequence[int],
    num_classes: int,
    sample_rate: int,
    window_ms: float = 30.0,
    hop_ms: float = 20.0,
    mel_bins: int = 40,
    mfcc: int = 0,
    lower_hz: float = 20.0,
    upper_hz: float = 4000.0,
    filters: int = 64,
    blocks: int = 4,
    first_kernel: Sequence[int] = (10, 4),
    dropout: float = 0.2,
    spec_augment: bool = False,
    batch_norm_momentum: float = 0.9,
) -> keras.Model:
    """Returns an uncompiled model from [samples] PCM to class probabilities.

    `batch_norm_momentum`: of every batch normalisation's moving statistics. 0.9 rather than
    Keras' 0.99: with 0.99 the moving averages were still far from the data's after a few
    hundred steps (measured: training accuracy 1.0, validation 0.4 on the tests' data), so
    the model did well on training batches and badly at inference."""
    if len(input_shape) != 1:
        raise ValueError(f"dscnn takes raw audio [samples], not shape {list(input_shape)}; "
                         "use it with an audio_dir source.")
    if filters < 1 or blocks < 0 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dscnn: filters {filters}, blocks {blocks}, dropout {dropout}: need "
                         "filters >= 1, blocks >= 0 and 0 <= dropout < 1.")
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="audio")
    x = audio_frontend.spectrogram(inputs, sample_rate, window_ms, hop_ms, mel_bins, mfcc,
                                   spec_augment, lower_hz, upper_hz)
    x = keras.layers.Conv2D(filters, tuple(first_kernel), strides=2, padding="same",
                            use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name="conv_bn")(x)
    x = keras.layers.ReLU(name="conv_relu")(x)
    for index in range(blocks):
        name = f"block{index + 1}"
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                         name=f"{name}_depthwise")(x)
        x = keras.layers.BatchNormalization(momentum=batch_norm_momentum,
                                               name=f"{name}_depthwise_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pointwise")(x)
        x = keras.layers.BatchNormalization(momentum=batch_norm_momentum,
                                               name=f"{name}_pointwise_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_pointwise_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 name="probabilities")(x)
    return keras.Model(inputs, outputs, name="dscnn")
