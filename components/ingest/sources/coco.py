"""`coco`: COCO object-detection annotations, one JSON file for a set of images (task
detection).

`train` (and `test`) is the annotations file (instances_*.json: "images" with id and
file_name, "annotations" with image_id, category_id and bbox [x, y, width, height] in pixels,
"categories" with id and name); `train_images` (`test_images`) the folder of its images
(default: the JSON file's folder). The id is the image's file name. Class names:
`class_names`, or every category name, in category-id order; an annotation whose category is
not among them quarantines its image (unknown_label), like a box outside the image or of no
area (components/ingest/sources/boxes.py). A crowd annotation (iscrowd 1: one box around many
objects, which COCO's own evaluation ignores) is quarantined by itself with reason "crowd",
naming its annotation; its image is kept with its other boxes. An image listed without
annotations is a background image. The file is read whole: its cost is its size.
"""

from __future__ import annotations

import json

from edgepipe.components.ingest.sources import boxes
from edgepipe.components.ingest.sources.common import read_bytes, rejection

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


def _objects(document: dict, path: str) -> tuple[dict, dict]:
    """({image id: [(label name, [xmin, ymin, xmax, ymax])]} of the annotations, {image id:
    [the crowd annotations' (annotation id, label name, bbox)]})."""
    names = {category.get("id"): str(category.get("name"))
             for category in document["categories"]}
    objects: dict = {image.get("id"): [] for image in document["images"]}
    crowds: dict = {image_id: [] for image_id in objects}
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
        if annotation.get("iscrowd") in (1, True):
            crowds[image_id].append((annotation.get("id", index), name, box))
            continue
        objects[image_id].append((name, corners))
    return objects, crowds


def read_units(config, origin: str) -> list:
    path, folder = boxes.origins(config)[origin]
    document = load(path)
    objects, crowds = _objects(document, path)
    items = [(str(image.get("file_name", "")), objects[image.get("id")], crowds[image.get("id")])
             for image in document["images"]]
    return boxes.chunks(origin, path, folder, items)


def read_unit(unit, config, info):
    yield unit


def expand(chunk, info):
    """The crowd annotations' rejections (one each), then the images' records."""
    origin, path, folder, items = chunk
    for filename, _, crowds in items:
        for annotation_id, name, box in crowds:
            yield rejection(f"{filename} annotation {annotation_id}", path, origin, "crowd",
                            f"annotation {annotation_id} ({name!r}, bbox {box}) of image "
                            f"{filename} is a crowd region (iscrowd 1): not one object, so not "
                            "a box to learn; the image is kept with its other boxes. Set "
                            "iscrowd 0 and draw a box per object to train on them.")
    yield from boxes.expand_items((origin, path, folder, [item[:2] for item in items]), info)
