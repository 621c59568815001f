"""A centroid detector in the manner of Edge Impulse's FOMO (task detection, `[train] model =
"fomo"`): a small CNN truncated at 1/8 of the input, then a 1x1 head giving, for every cell of
that coarse grid, a probability per class plus background. It finds where objects are (their
centres), not their extent: tiny enough for a microcontroller (about 30k parameters at 96x96).

The output is float32 [batch, H/8, W/8, 1 + classes] named "heatmap" (softmax over background,
class 0, class 1, ...). Training labels each cell holding a true box's centre with that box's
class and the rest background, weighted by `object_weight` (objects cover few cells);
components/shared/centroids.py makes the labels and reads the centroids back.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.models.keras import keras


def build(
    input_shape: Sequence[int],
    num_classes: int,
    mean: float,
    variance: float,
    filters: Sequence[int] = (16, 32, 64),
    head_units: int = 32,
) -> keras.Model:
    """An uncompiled model from raw float32 pixels [H, W, C] to the "heatmap"."""
    if len(filters) != 3:
        raise ValueError(f"fomo: filters {list(filters)}: give three counts (strides 2, 4, 8).")
    inputs = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(inputs)
    for index, count in enumerate(filters):
        for stride, part in ((2, "down"), (1, "conv")):
            x = keras.layers.Conv2D(count, 3, strides=stride, padding="same", use_bias=False,
                                    name=f"stage{index + 1}_{part}")(x)
            x = keras.layers.BatchNormalization(name=f"stage{index + 1}_{part}_bn")(x)
            x = keras.layers.ReLU(name=f"stage{index + 1}_{part}_relu")(x)
    x = keras.layers.Conv2D(head_units, 1, activation="relu", name="head_features")(x)
    logits = keras.layers.Conv2D(num_classes + 1, 1, name="head_logits")(x)
    heatmap = keras.layers.Softmax(axis=-1, dtype="float32", name="heatmap")(logits)
    return keras.Model(inputs, heatmap, name="fomo")
