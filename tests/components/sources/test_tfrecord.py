"""The `tfrecord` source on tf.train.Example files of Fashion-MNIST PNGs, with bad records."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgepipe.components.shared import examples_io
from tests.components.sources.conftest import read_quarantine
from tests.conftest import CLASS_NAMES


def png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def example(image: bytes | None, label, key="img") -> bytes:
    import tensorflow as tf

    feature = {}
    if image is not None:
        feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    if isinstance(label, int):
        feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    elif label is not None:
        feature["label"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write(path, records, compression=""):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), options=compression or None) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture(scope="module")
def tfrecord_run(run_stage, fashion_arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tfrecord")
    images, labels = fashion_arrays["train"]
    write(folder / "train-00000.tfrecord",
          [example(png(images[i]), int(labels[i])) for i in range(30)]
          + [example(png(images[30]), None),                    # no label
             example(png(images[31])[:50], int(labels[31]))])   # broken PNG
    cut = folder / "train-00001.tfrecord"                       # a copy cut mid-record
    write(cut, [example(png(images[i]), int(labels[i])) for i in range(40, 46)])
    cut.write_bytes(cut.read_bytes()[:-30])
    test_images, test_labels = fashion_arrays["test"]
    write(folder / "test-00000.tfrecord.gz",
          [example(png(test_images[i]), CLASS_NAMES[test_labels[i]]) for i in range(10)]
          + [example(png(test_images[10]), "Unicorn")], compression="GZIP")
    properties, artifacts = run_stage("ingest", {}, {
        "source": "tfrecord", "train": str(folder / "train-*.tfrecord"),
        "test": str(folder / "test-*.tfrecord.gz"), "feature_key": "img",
        "feature_kind": "image", "class_names": list(CLASS_NAMES),
        "max_quarantine_fraction": 0.2})
    return folder, properties, artifacts["examples"]


def test_examples_round_trip(tfrecord_run, fashion_arrays):
    _, properties, examples = tfrecord_run
    assert examples_io.input_shape(examples.path) == (28, 28, 1)
    seen = 0
    for split, origin in (("train", "train"), ("validation", "train"), ("test", "test")):
        images, labels = fashion_arrays[origin]
        data = examples_io.load_numpy(examples.path, split)
        for record_id, image, label in zip(data["id"], data["image"], data["label"]):
            file, index = record_id.rsplit(":", 1)
            index = int(index) + (40 if file == "train-00001.tfrecord" else 0)
            np.testing.assert_array_equal(image[..., 0], images[index])
            assert label == labels[index]
            seen += 1
    assert seen == 30 + 5 + 10


def test_bad_records_are_quarantined_exactly(tfrecord_run):
    folder, properties, examples = tfrecord_run
    rejected = {record["source"]: record["reason"] for record in read_quarantine(examples)}
    assert rejected == {
        f"{folder / 'train-00000.tfrecord'}:30": "missing_label",
        f"{folder / 'train-00000.tfrecord'}:31": "undecodable_image",
        f"{folder / 'train-00001.tfrecord'}:5": "truncated_record",
        f"{folder / 'test-00000.tfrecord.gz'}:10": "unknown_label",
    }
    assert properties["accounting"] == {
        "train": {"read": 38, "written": 35, "quarantined": 3, "by_reason": {
            "missing_label": 1, "undecodable_image": 1, "truncated_record": 1}},
        "test": {"read": 11, "written": 10, "quarantined": 1, "by_reason": {"unknown_label": 1}},
    }


def test_glob_matching_nothing_fails_clearly(run_stage, tmp_path):
    with pytest.raises(ValueError, match="path does not exist: .*nothing-\\*.tfrecord"):
        run_stage("ingest", {}, {"source": "tfrecord", "train": str(tmp_path / "nothing-*.tfrecord"),
                                 "feature_key": "img", "feature_kind": "image",
                                 "class_names": ["a"]})
