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

from edgepipe.components.ingest.sources.common import _listed, match, read_bytes, rejection
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


# ---------------------------------------------------------------- one annotations file per set
# (coco, box_csv): `train`/`test` name the file, `train_images`/`test_images` the images' folder.

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def origins(config) -> dict[str, tuple[str, str]]:
    """{origin: (annotations file, images folder; default the file's folder)}."""
    found = {"train" if config.test else "all": (config.train, config.train_images)}
    if config.test:
        found["test"] = (config.test, config.test_images)
    return {origin: (path, folder or path.rsplit("/", 1)[0])
            for origin, (path, folder) in found.items()}


def annotated_files(config) -> dict[str, list[str]]:
    """Every file read: the annotations file and the images of its folder, per origin."""
    return {origin: sorted({path, *(found for found in match(folder.rstrip("/") + "/*")
                                    if found.lower().endswith(IMAGE_SUFFIXES))})
            for origin, (path, folder) in origins(config).items()}


def chunks(origin: str, path: str, folder: str, items: list, size: int = 200) -> list:
    """Units of work: (origin, annotations file, images folder, [(file name, objects)])."""
    return [(origin, path, folder, items[start:start + size])
            for start in range(0, len(items), size)]


def expand_items(chunk, info):
    """The records (or rejections) of a chunk of (image file name, objects)."""
    origin, path, folder, items = chunk
    for filename, objects in items:
        if not filename or filename.startswith("/") or ".." in filename.split("/"):
            yield rejection(filename or "?", path, origin, "bad_annotation",
                            f"file name {filename!r} does not name an image in {folder}")
            continue
        yield image_record(filename, path, origin, folder, filename, objects, info)


def image_record(record_id: str, annotation: str, origin: str, folder: str, filename: str,
                 objects, info: dict) -> dict:
    """The record of image `filename` in `folder` with its objects, or a rejection (its
    image cannot be read, or record's reasons)."""
    image_path = f"{folder.rstrip('/')}/{filename}"
    try:
        data = read_bytes(image_path)
    except OSError as error:
        return rejection(record_id, annotation, origin, "missing_image",
                         f"its image {image_path} cannot be read ({error.strerror or error})")
    return record(record_id, image_path, origin, data, objects, info, annotation)


def describe(config, names: list[str], where: str) -> dict:
    """The source's description: the image shape and the class names (found in `where`)."""
    if not names:
        raise ValueError(f"{where}: no class names found; set [ingest] class_names.")
    if config.image_shape[2] not in MODES:
        raise ValueError(f"[ingest] image_shape {list(config.image_shape)}: channels must be "
                         "1, 3 or 4.")
    return {"feature": "image", "shape": list(config.image_shape), "class_names": names,
            "objects": True}
