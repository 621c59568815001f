"""The `coco` and `box_csv` sources (task detection): good boxes letterboxed with their image,
a background image kept, and each bad annotation (outside the image, zero area, unknown
label) rejected with its reason and file. The sources' own functions are run directly (the
Beam stage around them is the one test_voc.py runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgepipe.components.ingest.sources import SOURCES
from edgepipe.components.ingest.sources.config import Config

NAMES = ["Bag", "Trouser"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("box_images")
    for name, size in (("good.png", (40, 20)), ("plain.png", (30, 30)), ("outside.png", (30, 30)),
                       ("zero.png", (30, 30)), ("unknown.png", (30, 30))):
        Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(folder / name)
    return folder


def read_all(source: str, config: dict, folder) -> dict[str, dict]:
    parsed = Config.model_validate({"task": "detection", "source": source,
                                    "image_shape": [32, 32, 3], **config},
                                   context={"base_dir": str(folder)})
    module = SOURCES[source]
    info = module.describe(parsed)
    origin = next(iter(module.files(parsed)))
    return {record["id"]: record for unit in module.read_units(parsed, origin)
            for chunk in module.read_unit(unit, parsed, info)
            for record in module.expand(chunk, info)}


def check(found: dict, annotation_name: str) -> None:
    good = found["good.png"]["objects"]
    # 40x20 -> 32x16 (scale 0.8), 8 rows of padding above: box (4, 2, 20, 12) px
    np.testing.assert_allclose(good["bbox"], [[(2 * 0.8 + 8) / 32, 4 * 0.8 / 32,
                                               (12 * 0.8 + 8) / 32, 20 * 0.8 / 32]], atol=1e-6)
    assert list(good["label"]) == [0]
    assert len(found["plain.png"]["objects"]["label"]) == 0  # background, kept
    reasons = {key: found[key].get("reason") for key in ("outside.png", "zero.png", "unknown.png")}
    assert reasons == {"outside.png": "box_outside_image", "zero.png": "zero_area_box",
                       "unknown.png": "unknown_label"}
    assert all(found[key]["source"].endswith(annotation_name) for key in reasons)


def test_coco_annotations(images):
    document = {
        "categories": [{"id": 3, "name": "Bag"}, {"id": 7, "name": "Trouser"},
                       {"id": 9, "name": "Unicorn"}],
        "images": [{"id": index, "file_name": name} for index, name in enumerate(
            ["good.png", "plain.png", "outside.png", "zero.png", "unknown.png"])],
        "annotations": [
            {"id": 1, "image_id": 0, "category_id": 3, "bbox": [4, 2, 16, 10]},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [10, 10, 40, 5]},
            {"id": 3, "image_id": 3, "category_id": 7, "bbox": [10, 10, 0, 5]},
            {"id": 4, "image_id": 4, "category_id": 9, "bbox": [1, 1, 5, 5]}]}
    (images / "instances.json").write_text(json.dumps(document))
    found = read_all("coco", {"train": "instances.json", "class_names": NAMES}, images)
    check(found, "instances.json")


def test_csv_boxes(images):
    (images / "boxes.csv").write_text(
        "filename,xmin,ymin,xmax,ymax,label\n"
        "good.png,4,2,20,12,Bag\nplain.png,,,,,\noutside.png,10,10,50,15,Bag\n"
        "zero.png,10,10,10,15,Trouser\nunknown.png,1,1,6,6,Unicorn\n")
    found = read_all("box_csv", {"train": "boxes.csv"}, images)
    assert SOURCES["box_csv"].describe(Config.model_validate(
        {"task": "detection", "source": "box_csv", "train": "boxes.csv",
         "image_shape": [32, 32, 3]}, context={"base_dir": str(images)}))["class_names"] == \
        ["Bag", "Trouser", "Unicorn"]  # every label, sorted, when class_names is not set
    found = read_all("box_csv", {"train": "boxes.csv", "class_names": NAMES}, images)
    check(found, "boxes.csv")


def test_a_coco_crowd_box_is_quarantined_and_its_image_kept(images):
    """iscrowd 1: the crowd box is rejected by itself (reason "crowd", naming its annotation);
    the image keeps its other box."""
    document = {
        "categories": [{"id": 3, "name": "Bag"}, {"id": 7, "name": "Trouser"}],
        "images": [{"id": 0, "file_name": "good.png"}],
        "annotations": [
            {"id": 1, "image_id": 0, "category_id": 3, "bbox": [4, 2, 16, 10]},
            {"id": 5, "image_id": 0, "category_id": 7, "bbox": [0, 0, 40, 20], "iscrowd": 1}]}
    (images / "crowd.json").write_text(json.dumps(document))
    found = read_all("coco", {"train": "crowd.json", "class_names": NAMES}, images)
    crowd = found["good.png annotation 5"]
    assert crowd["reason"] == "crowd" and "'Trouser'" in crowd["detail"]
    assert crowd["source"].endswith("crowd.json")
    assert list(found["good.png"]["objects"]["label"]) == [0]  # kept, with its Bag only
