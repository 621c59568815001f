"""What the annotated-image sources (voc, ...) share: decode an image as a person sees it,
check its boxes, letterbox both to `[ingest] image_shape`, and make the record.

A record of a detection source is {"id", "source", "origin", "image": uint8 [H, W, C],
"objects": {"bbox": float32 [n, 4] (ymin, xmin, ymax, xmax) as fractions of the letterboxed
image, "label": int64 [n]}}; n = 0 is a background image, kept. One bad box rejects its image
(with the box, its file and the reason): training on an image with an object left unmarked
would teach the detector that the object is background.
"""

from __future__ import annotations

import io

import numpy as np

from edgepipe.components.ingest.sources.common import _listed, rejection
from edgepipe.contracts import letterbox

MODES = {1: "L", 3: "RGB", 4: "RGBA"}
# An image is decoded to be letterboxed: its header is read first and a larger one is
# quarantined unread (40 M pixels is 120 MB as RGB).
MAX_DECODE_PIXELS = 40_000_000
# Annotation tools write the last pixel's index (VOC is 1-based): a box may reach one pixel
# past the edge and is clipped; beyond that it is quarantined.
EDGE_TOLERANCE = 1.0


def decode(data: bytes, channels: int):
    """(PIL image upright (EXIF orientation applied) in the mode of `channels`, "", "") or
    (None, reason, detail)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:  # the header only
            if image.height * image.width > MAX_DECODE_PIXELS:
                return None, "image_too_large", (
                    f"image is {image.height}x{image.width} by its header; at most "
                    f"{MAX_DECODE_PIXELS:,} pixels are decoded: shrink it first")
            image.load()
            upright = ImageOps.exif_transpose(image)
            if upright.mode in ("P", "PA", "LA", "I;16", "I", "F", "1", "CMYK", "YCbCr"):
                # a palette or 16-bit image: through RGB(A) first so colours are kept
                upright = upright.convert("RGBA" if "A" in upright.mode or
                                          "transparency" in upright.info else "RGB")
            if upright.mode == "RGBA" and channels != 4:  # transparent pixels over white
                background = Image.new("RGB", upright.size, (255, 255, 255))
                background.paste(upright, mask=upright.getchannel("A"))
                upright = background
            return upright.convert(MODES[channels]), "", ""
    except Image.DecompressionBombError as error:
        return None, "image_too_large", f"not decoded: {error}"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return None, "undecodable_image", f"cannot decode the image: {error}"


def check_boxes(objects: list[tuple[str, list]], names: list[str], height: int, width: int):
    """(labels int64 [n], boxes float64 [n, 4] xyxy pixels clipped to the image, "", "") or
    (None, None, reason, detail) for the first bad box. `objects` holds (label name,
    [xmin, ymin, xmax, ymax] as text or numbers) per box."""
    labels, boxes = [], []
    for index, (name, corners) in enumerate(objects):
        where = f"box {index} ({name!r}, xmin ymin xmax ymax = {corners})"
        if name not in names:
            return None, None, "unknown_label", (
                f"{where}: label {name!r} is not one of {_listed(names)}; add it to "
                "[ingest] class_names or fix the annotation")
        try:
            xmin, ymin, xmax, ymax = (float(value) for value in corners)
        except (TypeError, ValueError):
            return None, None, "unparseable_box", f"{where}: a corner is not a number"
        if not np.isfinite([xmin, ymin, xmax, ymax]).all():
            return None, None, "unparseable_box", f"{where}: a corner is not finite"
        if (xmin < -EDGE_TOLERANCE or ymin < -EDGE_TOLERANCE or xmax > width + EDGE_TOLERANCE
                or ymax > height + EDGE_TOLERANCE):
            return None, None, "box_outside_image", (
                f"{where}: outside the {width}x{height} (width x height) image")
        xmin, xmax = np.clip([xmin, xmax], 0, width)
        ymin, ymax = np.clip([ymin, ymax], 0, height)
        if xmax <= xmin or ymax <= ymin:
            return None, None, "zero_area_box", (
                f"{where}: no area (xmax must exceed xmin and ymax ymin)")
        labels.append(names.index(name))
        boxes.append([xmin, ymin, xmax, ymax])
    return (np.asarray(labels, np.int64), np.asarray(boxes, np.float64).reshape(-1, 4), "", "")


def record(record_id: str, path: str, origin: str, data: bytes, objects, info: dict,
           annotation: str) -> dict:
    """The record of one annotated image, or a rejection naming the image file (it cannot be
    decoded) or the annotation file (a bad box)."""
    height, width, channels = info["shape"]
    image, reason, detail = decode(data, channels)
    if image is None:
        return rejection(record_id, path, origin, reason, detail)
    labels, boxes, reason, detail = check_boxes(objects, info["class_names"], image.height,
                                                image.width)
    if labels is None:
        return rejection(record_id, annotation, origin, reason, f"{detail} (image {path})")
    pixels, where = letterbox.apply(image, height, width)
    fractions = np.clip(where.to_letterbox(boxes), 0.0, 1.0).astype(np.float32)
    return {"id": record_id, "source": path, "origin": origin, "image": pixels,
            "objects": {"bbox": fractions, "label": labels}}
