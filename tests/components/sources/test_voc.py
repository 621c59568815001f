"""The `voc` source (task detection) on a tiny generated set plus one file per hazard: every
bad annotation quarantined with its reason and file, a background image kept, EXIF rotation,
grayscale and RGBA images converted, boxes letterboxed with their image, an entity bomb refused.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import letterbox
from tests.components.sources.conftest import read_quarantine

from tests.detection_fixtures import CLASSES


def test_each_bad_annotation_is_quarantined_with_its_reason_and_file(voc_examples, voc_tree):
    properties, artifacts = voc_examples
    rejected = {record["id"]: record for record in read_quarantine(artifacts["examples"])}
    assert {key: rejected[key]["reason"] for key in rejected} == {
        "outside": "box_outside_image", "zero": "zero_area_box", "unknown": "unknown_label",
        "bomb": "bad_annotation"}
    assert rejected["outside"]["source"].endswith("Annotations/outside.xml")
    assert "30x30" in rejected["outside"]["detail"] and "plain.png" in rejected["outside"]["detail"]
    assert "'Unicorn'" in rejected["unknown"]["detail"]
    assert "DTD" in rejected["bomb"]["detail"]
    assert properties["quarantined"]["total"] == 4
    # 12 generated + exif, gray, rgba, background in train; 4 in test
    assert properties["splits"]["train"] + properties["splits"]["validation"] == 16
    assert properties["splits"]["test"] == 4


def all_examples(examples):
    rows = {}
    for split in ("train", "validation", "test"):
        data = examples_io.load_numpy(examples, split)
        for index, record_id in enumerate(data["id"]):
            rows[record_id] = {key: values[index] for key, values in data.items()}
    return rows


def test_background_exif_gray_and_rgba_images_are_kept_upright_in_rgb(voc_examples):
    examples = voc_examples[1]["examples"].path
    assert examples_io.label_feature(examples) == "objects"
    assert examples_io.class_names(examples) == CLASSES
    rows = all_examples(examples)
    assert len(rows["background"]["objects"]["label"]) == 0
    exif = rows["exif"]
    # displayed 20 wide x 40 high -> scale 1.6, 32 x 64, 16 px of padding left and right
    np.testing.assert_allclose(exif["objects"]["bbox"], [[0, 16 / 64, 16 / 64, 48 / 64]],
                               atol=1e-6)
    assert exif["image"][6, 32, 0] > 200 and exif["image"][6, 32, 1] < 60  # red on top
    assert exif["image"][50, 32, 0] < 60                                    # black below
    assert (exif["image"][:, :10] == letterbox.FILL).all()                 # the padding
    assert rows["gray"]["image"].shape == (64, 64, 3)
    assert (rows["gray"]["image"][32, 32] == 200).all()
    assert list(rows["rgba"]["image"][32, 32]) == [0, 255, 0]
    np.testing.assert_allclose(rows["rgba"]["objects"]["bbox"],
                               [[16 / 64, 0, 48 / 64, 1]], atol=1e-6)


def test_generated_boxes_survive_the_round_trip(voc_examples, voc_tree):
    rows = all_examples(voc_examples[1]["examples"].path)
    xml = (voc_tree / "test" / "Annotations" / "test_00000.xml").read_text()
    from edgepipe.components.ingest.sources import voc

    _, objects = voc.parse(xml.encode())
    row = rows["test_00000"]
    expected = np.array([[float(v) for v in box] for _, box in objects]) / 64
    np.testing.assert_allclose(row["objects"]["bbox"], expected[:, [1, 0, 3, 2]], atol=1e-6)
    assert [CLASSES[label] for label in row["objects"]["label"]] == [name for name, _ in objects]


def test_letterbox_inverse_maps_boxes_back_to_the_original_pixels():
    where = letterbox.transform(300, 100, 96, 96)  # tall: scaled 0.32, padded left and right
    boxes = np.array([[10.0, 20.0, 90.0, 280.0], [0, 0, 100, 300]])
    np.testing.assert_allclose(where.to_original(where.to_letterbox(boxes)), boxes, atol=1e-9)
    assert where.to_letterbox(boxes)[1, 1] == pytest.approx(where.left / 96)


def test_statistics_describe_the_boxes_and_the_schema_names_the_classes(voc_statistics):
    from edgepipe.contracts import artifacts

    _, outputs = voc_statistics
    statistics = artifacts.read_statistics(outputs["statistics"].path)
    train = statistics["splits"]["train"]["features"]["objects"]
    assert train["boxes_per_image"]["background_images"] >= 1 or \
        statistics["splits"]["validation"]["features"]["objects"]["boxes_per_image"][
            "background_images"] >= 1
    assert sum(train["distribution"].values()) == train["num_boxes"] > 0
    rgba_like = train["per_class"]["Sandal"]
    assert 0 < rgba_like["mean_width"] <= 1 and rgba_like["mean_aspect_ratio"] > 0
    assert sum(rgba_like["aspect_ratio_histogram"]["counts"]) == rgba_like["count"]
    schema = (outputs["schema"].path / "schema.pbtxt").read_text()
    assert 'name: "objects/label"' in schema and 'value: "Ankle boot"' in schema
    assert artifacts.read_anomalies(outputs["statistics"].path) == [] or all(
        anomaly["severity"] == "warning"
        for anomaly in artifacts.read_anomalies(outputs["statistics"].path))
