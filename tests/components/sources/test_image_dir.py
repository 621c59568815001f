"""The `image_dir` source on PNGs cut from the Fashion-MNIST sample, with broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgepipe.components.shared import examples_io
from tests.components.sources.conftest import folder_name, read_quarantine
from tests.conftest import CLASS_NAMES

NAMES = [folder_name(name) for name in CLASS_NAMES]


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory, fashion_arrays):
    """train/ and test/ folders of real PNGs (40 + 10) plus three bad files."""
    root = tmp_path_factory.mktemp("image_dir")
    for split, count in (("train", 40), ("test", 10)):
        images, labels = fashion_arrays[split]
        for index in range(count):
            write_png(root / split / NAMES[labels[index]] / f"{index}.png", images[index])
    good = (root / "train" / NAMES[1] / "broken.png")
    buffer = io.BytesIO()
    Image.fromarray(fashion_arrays["train"][0][0]).save(buffer, format="PNG")
    good.write_bytes(buffer.getvalue()[:60])                          # a truncated PNG
    write_png(root / "train" / NAMES[8] / "big.png",                  # another size
              np.full((32, 32), 200, dtype=np.uint8))
    write_png(root / "test" / "Unicorn" / "0.png", fashion_arrays["test"][0][0])  # no class
    (root / "train" / NAMES[8] / "notes.txt").write_text("not an image, not a record")
    return root


def ingest_images(run_stage, root, **extra):
    return run_stage("ingest", {}, {
        "source": "image_dir", "train": str(root / "train"), "test": str(root / "test"),
        "class_names": NAMES, "max_quarantine_fraction": 0.1, **extra})


def test_pngs_round_trip(run_stage, image_tree, fashion_arrays):
    properties, artifacts = ingest_images(run_stage, image_tree)
    examples = artifacts["examples"].path
    assert examples_io.input_feature(examples) == "image"
    assert examples_io.input_shape(examples) == (28, 28, 1)  # learned from the first PNG
    assert properties["splits"]["test"] == 10
    assert properties["splits"]["train"] + properties["splits"]["validation"] == 40
    for split, origin in (("train", "train"), ("validation", "train"), ("test", "test")):
        data = examples_io.load_numpy(examples, split)
        images, labels = fashion_arrays[origin]
        for record_id, image, label in zip(data["id"], data["image"], data["label"]):
            folder, file = record_id.split("/")
            index = int(file.removesuffix(".png"))
            np.testing.assert_array_equal(image[..., 0], images[index])
            assert label == labels[index] and folder == NAMES[label]


def test_broken_and_foreign_files_are_quarantined_exactly(run_stage, image_tree):
    properties, artifacts = ingest_images(run_stage, image_tree)
    rejected = {record["id"]: record for record in read_quarantine(artifacts["examples"])}
    assert {key: record["reason"] for key, record in rejected.items()} == {
        f"{NAMES[1]}/broken.png": "undecodable_image",
        f"{NAMES[8]}/big.png": "wrong_shape",
        "Unicorn/0.png": "unknown_label",
    }
    assert rejected[f"{NAMES[8]}/big.png"]["source"] == str(
        image_tree / "train" / NAMES[8] / "big.png")
    assert "32x32, expected 28x28" in rejected[f"{NAMES[8]}/big.png"]["detail"]
    assert properties["accounting"] == {
        "train": {"read": 42, "written": 40, "quarantined": 2,
                  "by_reason": {"undecodable_image": 1, "wrong_shape": 1}},
        "test": {"read": 11, "written": 10, "quarantined": 1, "by_reason": {"unknown_label": 1}},
    }


def test_resize_keeps_images_of_another_size(run_stage, image_tree):
    properties, artifacts = ingest_images(run_stage, image_tree, resize=True)
    assert properties["accounting"]["train"]["written"] == 41
    data = {split: examples_io.load_numpy(artifacts["examples"].path, split)
            for split in ("train", "validation")}
    (big,) = [image for split in data.values() for record_id, image in
              zip(split["id"], split["image"]) if record_id.endswith("big.png")]
    assert big.shape == (28, 28, 1) and (big == 200).all()


def test_missing_and_empty_folders_fail_clearly(run_stage, tmp_path):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="no .png/.jpg/.jpeg files in any sub-folder"):
        run_stage("ingest", {}, {"source": "image_dir", "train": str(tmp_path / "empty")})
    with pytest.raises(ValueError, match="path does not exist: .*nowhere"):
        run_stage("ingest", {}, {"source": "image_dir", "train": str(tmp_path / "nowhere")})
