"""The letterbox: how an image of any size becomes a detector's fixed input, and back.

The image is scaled by one factor (its aspect ratio kept) to fit inside [H, W] and centred on
a plain background (FILL); its boxes move by the same scale and offset. Ingest applies it to
every annotated image, serving to every POSTed one, and serving maps the detector's boxes back
through the inverse, into the original image's pixels. Neutral: numpy only (Pillow resizes).
"""

from __future__ import annotations

import dataclasses

import numpy as np

FILL = 114  # mid-grey padding: neither the black nor the white an object could be


@dataclasses.dataclass(frozen=True)
class Transform:
    """original pixel (x, y) -> letterboxed pixel (x * scale + left, y * scale + top)."""

    scale: float
    top: int
    left: int
    original_height: int
    original_width: int
    height: int
    width: int

    def to_letterbox(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """[n, 4] (xmin, ymin, xmax, ymax) original pixels -> [n, 4] (ymin, xmin, ymax, xmax)
        as fractions of the letterboxed image (TFDS's BBox order)."""
        boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
        xmin, ymin, xmax, ymax = boxes.T
        return np.stack([(ymin * self.scale + self.top) / self.height,
                         (xmin * self.scale + self.left) / self.width,
                         (ymax * self.scale + self.top) / self.height,
                         (xmax * self.scale + self.left) / self.width], axis=1)

    def to_original(self, boxes_yxyx: np.ndarray) -> np.ndarray:
        """[n, 4] (ymin, xmin, ymax, xmax) fractions of the letterboxed image -> [n, 4]
        (xmin, ymin, xmax, ymax) pixels of the original image, clipped to it."""
        boxes = np.asarray(boxes_yxyx, np.float64).reshape(-1, 4)
        ymin, xmin, ymax, xmax = boxes.T
        x = lambda v: np.clip((v * self.width - self.left) / self.scale, 0, self.original_width)
        y = lambda v: np.clip((v * self.height - self.top) / self.scale, 0,
                              self.original_height)
        return np.stack([x(xmin), y(ymin), x(xmax), y(ymax)], axis=1)


def transform(original_height: int, original_width: int, height: int, width: int) -> Transform:
    scale = min(height / original_height, width / original_width)
    new_height = max(1, round(original_height * scale))
    new_width = max(1, round(original_width * scale))
    return Transform(scale, (height - new_height) // 2, (width - new_width) // 2,
                     original_height, original_width, height, width)


def apply(image, height: int, width: int) -> tuple[np.ndarray, Transform]:
    """(uint8 [height, width, channels] letterboxed array, its Transform) of a PIL image
    already in the wanted mode (L, RGB or RGBA)."""
    from PIL import Image

    where = transform(image.height, image.width, height, width)
    new_height = max(1, round(image.height * where.scale))
    new_width = max(1, round(image.width * where.scale))
    if (new_height, new_width) != (image.height, image.width):
        image = image.resize((new_width, new_height), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels.reshape(new_height, new_width, -1)
    canvas = np.full((height, width, pixels.shape[2]), FILL, np.uint8)
    canvas[where.top:where.top + new_height, where.left:where.left + new_width] = pixels
    return canvas, where
