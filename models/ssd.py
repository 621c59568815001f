"""A small single-shot box detector (SSD) for task detection, trained from scratch.

A plain CNN backbone (conv, batch norm, ReLU; stride 2 between stages) gives two feature maps,
at 1/8 and 1/16 of the input; on each, a 3x3 convolution predicts, for every anchor of every
cell, four box offsets and one score per class plus background. The output is one float32
tensor [batch, anchors, 4 + 1 + classes] named "raw_detections": offsets (ty, tx, th, tw), then
the logits of background, class 0, class 1, ... The anchors (`anchors`) are boxes of
`scales` (a fraction of the image, per feature map) and `aspect_ratios` centred on each cell,
in the order the head's reshape lays them out (map by map, row-major, anchor last). Decoding,
non-max suppression and TFLite's TFLite_Detection_PostProcess op come after the model
(components/shared/detection.py); the offsets follow the Faster R-CNN box coder with the
scales BOX_SCALES, as that op expects.

`backbone` may name the user's own function ("my_backbone.py:features"): it takes the
normalised input tensor and returns the two feature tensors (strides 8 and 16 of a square
input, or any two maps, the finer first); the heads and anchors are put on them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgepipe.models.keras import keras

BOX_SCALES = (10.0, 10.0, 5.0, 5.0)  # y, x, h, w: the coder's (and the op's) scale values


def build(
    input_shape: Sequence[int],
    num_classes: int,
    mean: float,
    variance: float,
    filters: Sequence[int] = (16, 32, 64, 128),
    scales: Sequence[Sequence[float]] = ((0.12, 0.2), (0.3, 0.45)),
    aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5),
    backbone: str | None = None,
) -> keras.Model:
    """An uncompiled model from raw float32 pixels [H, W, C] to "raw_detections"."""
    if len(filters) != 4:
        raise ValueError(f"ssd: filters {list(filters)}: give four counts (strides 2, 4, 8, 16).")
    inputs = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(inputs)
    if backbone:
        from edgepipe.models import user

        maps = list(user.load(backbone)(x))
    else:
        maps = []
        for index, count in enumerate(filters):
            x = _conv(x, count, 2, f"stage{index + 1}_down")
            x = _conv(x, count, 1, f"stage{index + 1}_conv")
            if index >= 2:
                maps.append(x)
    if len(maps) != len(scales):
        raise ValueError(f"ssd: {len(maps)} feature maps but scales has {len(scales)} entries; "
                         "give one list of scales per feature map.")
    per_cell = [len(level) * len(aspect_ratios) for level in scales]
    outputs = []
    for index, (features, count) in enumerate(zip(maps, per_cell)):
        head = keras.layers.Conv2D(count * (5 + num_classes), 3, padding="same",
                                   name=f"head{index + 1}")(features)
        outputs.append(keras.layers.Reshape((-1, 5 + num_classes),
                                            name=f"head{index + 1}_anchors")(head))
    joined = (keras.layers.Concatenate(axis=1, name="joined")(outputs) if len(outputs) > 1
              else outputs[0])
    raw = keras.layers.Activation("linear", dtype="float32", name="raw_detections")(joined)
    return keras.Model(inputs, raw, name="ssd")


def _conv(x, count: int, stride: int, name: str):
    x = keras.layers.Conv2D(count, 3, strides=stride, padding="same", use_bias=False,
                            name=name)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def grids(model) -> list[tuple[int, int]]:
    """(rows, columns) of each feature map the heads sit on, finest first."""
    heads = sorted((layer for layer in model.layers if layer.name.startswith("head")
                    and not layer.name.endswith("_anchors")), key=lambda layer: layer.name)
    return [(int(layer.output_shape[1]), int(layer.output_shape[2])) for layer in heads]


def anchors(grid_sizes: Sequence[Sequence[int]], scales: Sequence[Sequence[float]],
            aspect_ratios: Sequence[float]) -> np.ndarray:
    """float32 [N, 4] anchors (y centre, x centre, height, width) as fractions of the image,
    in the order of the model's output."""
    found = []
    for (rows, columns), level in zip(grid_sizes, scales):
        shapes = [(scale / np.sqrt(ratio), scale * np.sqrt(ratio))
                  for scale in level for ratio in aspect_ratios]  # (height, width)
        for row in range(rows):
            for column in range(columns):
                for height, width in shapes:
                    found.append(((row + 0.5) / rows, (column + 0.5) / columns, height, width))
    return np.asarray(found, np.float32)
