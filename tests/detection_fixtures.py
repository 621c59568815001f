"""Detection fixtures: a tiny Pascal VOC tree written by data/make_detection_set.py (real
Fashion-MNIST items on generated backgrounds, 64x64) plus one file per hazard (a box outside
its image, one of zero area, an unknown label, an entity bomb, a background image, an EXIF-
rotated JPEG, a grayscale and an RGBA image), and each stage's artifact built from it by the
real stages, once per test session (registered in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import data.make_detection_set as generator

CLASSES = ["T-shirt/top", "Trouser", "Sandal", "Bag", "Ankle boot"]
BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotation><filename>&lol3;</filename></annotation>"""


def voc_xml(filename: str, objects) -> str:
    return generator.annotation(filename.rsplit(".", 1)[0], 0, objects).replace(
        f"<filename>{filename.rsplit('.', 1)[0]}.jpg</filename>", f"<filename>{filename}</filename>")


@pytest.fixture(scope="session")
def voc_tree(tmp_path_factory):
    """train/ and test/ in VOC's layout: 12 + 4 generated images, and the hazards in train."""
    root = tmp_path_factory.mktemp("voc")
    generator.main([str(root), "--train", "12", "--test", "4", "--size", "64", "--seed", "3"])
    train = root / "train"
    images, annotations = train / "JPEGImages", train / "Annotations"
    block = np.zeros((20, 40, 3), np.uint8)
    block[:, :10] = (255, 0, 0)  # a red strip on the left of the stored (unrotated) pixels
    rotated = Image.fromarray(block)
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the strip is on top
    rotated.save(images / "exif.jpg", exif=exif, quality=95)
    (annotations / "exif.xml").write_text(voc_xml("exif.jpg", [("Bag", (0, 0, 20, 10))]))
    Image.fromarray(np.full((30, 30), 200, np.uint8), "L").save(images / "gray.png")
    (annotations / "gray.xml").write_text(voc_xml("gray.png", [("Trouser", (5, 5, 25, 25))]))
    rgba = np.zeros((30, 60, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 255, 255
    Image.fromarray(rgba, "RGBA").save(images / "rgba.png")
    (annotations / "rgba.xml").write_text(voc_xml("rgba.png", [("Sandal", (0, 0, 60, 30))]))
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(images / "plain.png")
    (annotations / "background.xml").write_text(voc_xml("plain.png", []))
    (annotations / "outside.xml").write_text(voc_xml("plain.png", [("Bag", (10, 10, 45, 20))]))
    (annotations / "zero.xml").write_text(voc_xml("plain.png", [("Bag", (10, 10, 10, 20))]))
    (annotations / "unknown.xml").write_text(voc_xml("plain.png", [("Unicorn", (1, 1, 9, 9))]))
    (annotations / "bomb.xml").write_text(BOMB)
    return root


@pytest.fixture(scope="session")
def voc_examples(run_stage, voc_tree):
    return run_stage("ingest", {}, {
        "task": "detection", "source": "voc", "train": str(voc_tree / "train"),
        "test": str(voc_tree / "test"), "image_shape": [64, 64, 3],
        "class_names": CLASSES, "max_quarantine_fraction": 0.5})


@pytest.fixture(scope="session")
def voc_statistics(run_stage, voc_examples):
    return run_stage("statistics", {"examples": voc_examples[1]["examples"]}, {})


@pytest.fixture(scope="session")
def detection_model(run_stage, voc_examples, voc_statistics):
    """A box detector trained for two epochs: enough to run every later stage, not to detect."""
    return run_stage("train", {"examples": voc_examples[1]["examples"],
                               "statistics": voc_statistics[1]["statistics"]},
                     {"task": "detection", "model": "ssd", "epochs": 2, "batch_size": 8,
                      "precision": "float32",
                      "model_options": {"filters": [8, 8, 16, 16]}})


@pytest.fixture(scope="session")
def detection_evaluation(run_stage, voc_examples, detection_model):
    return run_stage("evaluate", {"examples": voc_examples[1]["examples"],
                                  "model": detection_model[1]["model"]},
                     {"task": "detection", "min_map_50": 0.0})


@pytest.fixture(scope="session")
def detection_tflite(run_stage, voc_examples, detection_model):
    return run_stage("quantize", {"examples": voc_examples[1]["examples"],
                                  "model": detection_model[1]["model"]},
                     {"task": "detection", "variants": ["float32"], "benchmark_tool": False,
                      "representative_examples": 8})


# The centroid detector (`[train] model = "fomo"`): small filters, one epoch of two steps.
FOMO_OPTIONS = {"filters": [8, 16, 16], "head_units": 16}


@pytest.fixture(scope="session")
def centroid_model(run_stage, voc_examples, voc_statistics):
    return run_stage("train", {"examples": voc_examples[1]["examples"],
                               "statistics": voc_statistics[1]["statistics"]},
                     {"task": "detection", "model": "fomo", "epochs": 1, "batch_size": 8,
                      "precision": "float32", "learning_rate": 0.01,
                      "model_options": FOMO_OPTIONS})


@pytest.fixture(scope="session")
def centroid_evaluation(run_stage, voc_examples, centroid_model):
    return run_stage("evaluate", {"examples": voc_examples[1]["examples"],
                                  "model": centroid_model[1]["model"]},
                     {"task": "detection", "min_centroid_f1": 0.0})


@pytest.fixture(scope="session")
def centroid_tflite(run_stage, voc_examples, centroid_model):
    return run_stage("quantize", {"examples": voc_examples[1]["examples"],
                                  "model": centroid_model[1]["model"]},
                     {"task": "detection", "variants": ["float32", "int8"],
                      "benchmark_tool": False, "representative_examples": 8})
