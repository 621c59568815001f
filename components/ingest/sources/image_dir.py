"""`image_dir`: one sub-folder per class of PNG/JPEG files (keras' image_dataset_from_directory
layout). The id is "<class>/<file name>", stable when files are added. Every example gets the
configured `image_shape` (default: the first image's size and colour); an image of another
size is resized when `resize = true`, else quarantined. Files that cannot be decoded (broken
or truncated PNG/JPEG) are quarantined with the decoder's message. The size is read from the
header first, so a huge image (a 20000x20000 PNG) is quarantined by name, never decoded.
"""

from __future__ import annotations

import io
import struct

import numpy as np

from edgepipe.components.ingest.sources.common import (class_folders, folder_records, read_bytes,
                                                        rejection, unlabeled_folder)

KIND = "image_dir"
FIELDS = ("train", "test", "unlabeled", "image_shape", "resize")
REQUIRED = ("train",)
SUFFIXES = (".png", ".jpg", ".jpeg")
CHUNK_FILES = 500
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _by_class(config) -> dict[str, dict[str, list[str]]]:
    found = {"train" if config.test else "all": class_folders(config.train, SUFFIXES)}
    if config.test:
        found["test"] = class_folders(config.test, SUFFIXES)
    if config.unlabeled:
        found["unlabeled"] = unlabeled_folder(config.unlabeled, SUFFIXES)
    return found


def files(config) -> dict[str, list[str]]:
    return {origin: [path for paths in classes.values() for path in paths]
            for origin, classes in _by_class(config).items()}


def class_names_of(config, by_class: dict) -> list[str]:
    first = by_class["train" if config.test else "all"]
    return list(config.class_names or sorted(first))


def probe_shape(data: bytes) -> tuple[int, int, int]:
    """(height, width, channels) of an encoded image: 1 channel for grayscale, else 3."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.height, image.width, 1 if image.mode in ("L", "1", "I;16") else 3


def describe(config) -> dict:
    by_class = _by_class(config)
    shape = config.image_shape
    if shape is None:
        first = next(iter(next(iter(by_class.values())).values()))[0]
        from PIL import Image

        try:
            shape = probe_shape(read_bytes(first))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise ValueError(f"{first}: cannot read the first image to learn the image size "
                             f"({error}); set [ingest] image_shape = [H, W, C].") from None
    if shape[2] not in MODES:
        raise ValueError(f"[ingest] image_shape {list(shape)}: channels must be 1, 3 or 4.")
    return {"feature": "image", "shape": list(shape), "class_names": class_names_of(config,
                                                                                  by_class)}


def read_units(config, origin: str) -> list:
    items = [(name, path) for name, paths in _by_class(config)[origin].items() for path in paths]
    return [(origin, items[start:start + CHUNK_FILES])
            for start in range(0, len(items), CHUNK_FILES)]


def read_unit(unit, config, info):
    yield (*unit, bool(config.resize))


# Images larger than this (by their header) are quarantined unread when they would have to
# be decoded to be resized: 40 M pixels is 120 MB as RGB. PIL itself refuses to open more
# than 2 x Image.MAX_IMAGE_PIXELS (about 179 M) as a decompression bomb.
MAX_DECODE_PIXELS = 40_000_000


def decode(data: bytes, shape, resize: bool) -> tuple[np.ndarray | None, str, str]:
    """(uint8 array of `shape`, "", "") or (None, reason, detail). The size is checked from
    the header before any pixel is decoded: an image of another size costs nothing unless it
    is to be resized, and then at most MAX_DECODE_PIXELS."""
    from PIL import Image, UnidentifiedImageError

    height, width, channels = shape
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            if (image.height, image.width) != (height, width):
                if not resize:
                    return None, "wrong_shape", (
                        f"image is {image.height}x{image.width}, expected {height}x{width} "
                        "(set resize = true to resize)")
                if image.height * image.width > MAX_DECODE_PIXELS:
                    return None, "image_too_large", (
                        f"image is {image.height}x{image.width} ({image.height * image.width:,} "
                        f"pixels by its header); at most {MAX_DECODE_PIXELS:,} are decoded to be "
                        f"resized to {height}x{width}: shrink it first")
                image = image.resize((width, height), Image.BILINEAR)
            image.load()
            array = np.asarray(image.convert(MODES[channels]), dtype=np.uint8)
    except Image.DecompressionBombError as error:  # PIL refuses to open it at all
        size = (f"image is {_png_size(data)[0]}x{_png_size(data)[1]} by its header; "
                if _png_size(data) else "")
        return None, "image_too_large", f"{size}not decoded: {error}"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return None, "undecodable_image", f"cannot decode the image: {error}"
    return array.reshape(height, width, channels), "", ""


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR, or None for another format."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def expand(chunk, info):
    origin, items, resize = chunk
    for record_id, path, label, rejected in folder_records(items, origin, info["class_names"]):
        if rejected:
            yield rejected
            continue
        image, reason, detail = decode(read_bytes(path), info["shape"], resize)
        if image is None:
            yield rejection(record_id, path, origin, reason, detail)
        else:
            yield {"id": record_id, "source": path, "origin": origin, "label": label, "image": image}
