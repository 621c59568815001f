"""`coco`: COCO object-detection annotations, one JSON file for a set of images (task
detection).

`train` (and `test`) is the annotations file (instances_*.json: "images" with id and
file_name, "annotations" with image_id, category_id and bbox [x, y, width, height] in pixels,
"categories" with id and name); `train_images` (`test_images`) the folder of its images
(default: the JSON file's folder). The id is the image's file name. Class names:
`class_names`, or every category name, in category-id order; an annotation whose category is
not among them quarantines its image (unknown_label), like a box outside the image or of no
area (components/ingest/sources/boxes.py). Crowd annotations (iscrowd 1) are kept as boxes of
their class. An image listed without annotations is a background image. The file is read
whole: its cost is its size.
"""

from __future__ import annotations

import json

from edgepipe.components.ingest.sources import boxes
from edgepipe.components.ingest.sources.common import read_bytes

KIND = "coco"
FIELDS = ("train", "test", "train_images", "test_images", "image_shape")
REQUIRED = ("train", "image_shape")


def load(path: str) -> dict:
    """The annotations file, checked for the keys this source reads."""
    try:
        document = json.loads(read_bytes(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON file ({error}); expected COCO annotations.") from None
    if not isinstance(document, dict) or not all(
            isinstance(document.get(key), list) for key in ("images", "annotations",
                                                            "categories")):
        raise ValueError(f"{path}: expected a JSON object with lists \"images\", "
                         "\"annotations\" and \"categories\" (COCO's instances format).")
    return document


def files(config) -> dict[str, list[str]]:
    return boxes.annotated_files(config)


def describe(config) -> dict:
    names = list(config.class_names) or [
        str(category.get("name")) for category in
        sorted(load(config.train)["categories"], key=lambda category: category.get("id", 0))]
    return boxes.describe(config, names, config.train)


def _objects(document: dict, path: str) -> dict:
    """{image id: [(label name, [xmin, ymin, xmax, ymax])]} of the annotations."""
    names = {category.get("id"): str(category.get("name"))
             for category in document["categories"]}
    objects: dict = {image.get("id"): [] for image in document["images"]}
    for index, annotation in enumerate(document["annotations"]):
        image_id = annotation.get("image_id")
        if image_id not in objects:
            raise ValueError(f"{path}: annotation {annotation.get('id', index)} names image_id "
                             f"{image_id!r}, which \"images\" does not list.")
        box = annotation.get("bbox")
        if not isinstance(box, list) or len(box) != 4:
            corners = [box] * 4  # check_boxes reports it unparseable
        else:
            x, y, width, height = box
            try:
                corners = [x, y, float(x) + float(width), float(y) + float(height)]
            except (TypeError, ValueError):
                corners = list(box)
        name = names.get(annotation.get("category_id"),
                         f"category id {annotation.get('category_id')!r}")
        objects[image_id].append((name, corners))
    return objects


def read_units(config, origin: str) -> list:
    path, folder = boxes.origins(config)[origin]
    document = load(path)
    objects = _objects(document, path)
    items = [(str(image.get("file_name", "")), objects[image.get("id")])
             for image in document["images"]]
    return boxes.chunks(origin, path, folder, items)


def read_unit(unit, config, info):
    yield unit


def expand(chunk, info):
    return boxes.expand_items(chunk, info)
