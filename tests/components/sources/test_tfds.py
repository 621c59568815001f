"""The `tfds` source offline: a fashion_mnist dataset prepared locally from the IDX sample,
read by catalogue name, and used as the fallback of an idx config whose files are missing."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from tests.components.sources.conftest import read_quarantine
from tests.conftest import CLASS_NAMES, ingest_config


def bad_records() -> list[bytes]:
    """A record whose PNG is cut short and one whose label is outside the 10 classes."""
    import tensorflow as tf

    def record(image: bytes, label: int) -> bytes:
        return tf.train.Example(features=tf.train.Features(feature={
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        })).SerializeToString()

    good_png = tf.io.encode_png(tf.zeros((28, 28, 1), tf.uint8)).numpy()
    return [record(good_png[:40], 3), record(good_png, 11)]


def prepare_fashion_mnist(data_dir: pathlib.Path, arrays: dict, counts: dict) -> None:
    """Write a prepared TFDS `fashion_mnist` (its registered builder's features and file
    layout) with the first records of the sample, so no download is needed."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.builder("fashion_mnist", data_dir=str(data_dir))
    version_dir = pathlib.Path(builder.data_dir)
    version_dir.mkdir(parents=True)
    infos = []
    for split, count in counts.items():
        images, labels = arrays[split]
        template = tfds.core.ShardedFileTemplate(
            data_dir=version_dir, dataset_name="fashion_mnist", split=split,
            filetype_suffix="tfrecord")
        path = pathlib.Path(str(template.sharded_filepaths(1)[0]))
        extra = bad_records() if split == "train" else []
        with tf.io.TFRecordWriter(str(path)) as writer:
            for image, label in zip(images[:count], labels[:count]):
                writer.write(builder.info.features.serialize_example(
                    {"image": image[..., None], "label": int(label)}))
            for record in extra:
                writer.write(record)
        infos.append(tfds.core.SplitInfo(name=split, shard_lengths=[count + len(extra)],
                                         num_bytes=path.stat().st_size,
                                         filename_template=template))
    tfds.folder_dataset.write_metadata(data_dir=version_dir, features=builder.info.features,
                                       split_infos=infos, filename_template=None)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory, fashion_arrays):
    data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
    prepare_fashion_mnist(data_dir, fashion_arrays, {"train": 40, "test": 12})
    return data_dir


def test_catalogue_dataset_by_name_offline(run_stage, tfds_dir, fashion_arrays):
    properties, artifacts = run_stage("ingest", {}, {
        "source": "tfds", "name": "fashion_mnist", "data_dir": str(tfds_dir),
        "download": False, "max_quarantine_fraction": 0.1})
    examples = artifacts["examples"].path
    assert properties["read"] == {"train": 42, "test": 12}
    shard = tfds_dir / "fashion_mnist" / "3.0.1" / "fashion_mnist-train.tfrecord-00000-of-00001"
    assert {record["source"]: record["reason"] for record in
            read_quarantine(artifacts["examples"])} == {
        f"{shard}:40": "undecodable_image", f"{shard}:41": "label_out_of_range"}
    assert properties["accounting"]["train"] == {
        "read": 42, "written": 40, "quarantined": 2,
        "by_reason": {"undecodable_image": 1, "label_out_of_range": 1}}
    assert examples_io.class_names(examples) == list(CLASS_NAMES)  # the ClassLabel's names
    for split, origin in (("train", "train"), ("validation", "train"), ("test", "test")):
        images, labels = fashion_arrays[origin]
        data = examples_io.load_numpy(examples, split)
        for record_id, image, label in zip(data["id"], data["image"], data["label"]):
            file, index = record_id.rsplit(":", 1)
            assert file == f"fashion_mnist-{origin}.tfrecord-00000-of-00001"
            np.testing.assert_array_equal(image[..., 0], images[int(index)])
            assert label == labels[int(index)]


def test_fallback_reads_tfds_when_idx_files_are_missing(run_stage, tfds_dir, tmp_path):
    missing = {key: str(tmp_path / f"{key}.gz") for key in
               ("train_images", "train_labels", "test_images", "test_labels")}
    config = {**ingest_config(missing), "fallback": "tfds:fashion_mnist",
              "data_dir": str(tfds_dir), "max_quarantine_fraction": 0.1}
    properties, artifacts = run_stage("ingest", {}, config)
    assert properties["source"] == "tfds" and properties["read"] == {"train": 42, "test": 12}
    assert properties["splits"]["test"] == 12

    with pytest.raises(ValueError, match="path does not exist"):  # no fallback: config error
        run_stage("ingest", {}, ingest_config(missing))


def test_unprepared_dataset_without_download_fails_clearly(run_stage, tmp_path):
    with pytest.raises(FileNotFoundError, match="'mnist' is not prepared in .* download = false"):
        run_stage("ingest", {}, {"source": "tfds", "name": "mnist", "data_dir": str(tmp_path),
                                 "download": False})
