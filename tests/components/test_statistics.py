"""The statistics stage: numbers that agree with numpy, TFDV-format protos, and anomalies."""

from __future__ import annotations

import json
import shutil

import numpy as np

from components import examples_io
from pipeline.stage import Artifact
from tests.components.test_ingest import tiny_idx_files
from tests.conftest import CLASS_NAMES, ingest_config


def load_json(path):
    return json.loads(path.read_text())


def test_statistics_agree_with_numpy(statistics_artifacts, examples_artifact):
    statistics = load_json(statistics_artifacts["statistics"].path / "statistics.json")["splits"]
    assert set(statistics) == {"train", "validation", "test"}
    for split, summary in statistics.items():
        data = examples_io.load_numpy(examples_artifact.path, split)
        pixels = data["image"].astype(np.float64)
        image, label = summary["features"]["image"], summary["features"]["label"]
        assert summary["num_examples"] == len(data["label"])
        assert image["shape"] == [28, 28, 1] and image["missing"] == 0
        assert (image["min"], image["max"]) == (pixels.min(), pixels.max())
        np.testing.assert_allclose([image["mean"], image["std"]], [pixels.mean(), pixels.std()],
                                   rtol=1e-9)
        counts, edges = np.histogram(pixels, bins=10, range=(0, 255))
        assert image["histogram"]["counts"] == counts.tolist()
        np.testing.assert_allclose(image["histogram"]["edges"], edges)
        expected = {name: int((data["label"] == index).sum())
                    for index, name in enumerate(CLASS_NAMES)}
        assert label["distribution"] == expected
        assert sum(label["distribution"].values()) == summary["num_examples"]

    properties = statistics_artifacts["statistics"].properties
    assert properties["num_examples"] == examples_artifact.properties["splits"]
    assert properties["anomalies"]["errors"] == 0 and "halt" not in properties


def test_statistics_and_schema_are_tfdv_protos(statistics_artifacts, examples_artifact):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

    statistics = statistics_pb2.DatasetFeatureStatisticsList.FromString(
        (statistics_artifacts["statistics"].path / "statistics.pb").read_bytes())
    by_split = {dataset.name: dataset for dataset in statistics.datasets}
    assert {split: dataset.num_examples for split, dataset in by_split.items()} == \
        examples_artifact.properties["splits"]
    features = {feature.path.step[0]: feature for feature in by_split["train"].features}
    image = features["image"].num_stats
    assert image.common_stats.num_missing == 0 and image.max == 255
    assert image.common_stats.avg_num_values == 28 * 28
    assert sum(bucket.sample_count for bucket in image.histograms[0].buckets) == \
        by_split["train"].num_examples * 28 * 28
    (ranks,) = [stat.rank_histogram for stat in features["label"].custom_stats
                if stat.name == "label_distribution"]
    assert [bucket.label for bucket in ranks.buckets] == list(CLASS_NAMES)

    schema = text_format.Parse(
        (statistics_artifacts["schema"].path / "schema.pbtxt").read_text(), schema_pb2.Schema())
    fields = {feature.name: feature for feature in schema.feature}
    assert set(fields) == {"id", "image", "label"}
    assert fields["image"].type == schema_pb2.BYTES and fields["image"].HasField("image_domain")
    assert (fields["label"].int_domain.min, fields["label"].int_domain.max) == (0, 9)
    assert list(schema.string_domain[0].value) == list(CLASS_NAMES)


def test_shifted_label_distribution_is_a_warning(run_stage, tmp_path):
    # Train holds classes 0..4 only, test only class 9: test's distribution has moved.
    files = tiny_idx_files(tmp_path, train_labels=[0, 1, 2, 3, 4] * 6, test_labels=[9] * 8)
    _, examples = run_stage("ingest", {}, {**ingest_config(files), "validation_fraction": 0.0})
    properties, artifacts = run_stage("statistics", {"examples": examples["examples"]}, {})
    anomalies = load_json(artifacts["statistics"].path / "anomalies.json")["anomalies"]
    shifted = [a for a in anomalies if a["split"] == "test" and a["feature"] == "label"]
    assert len(shifted) == 1 and shifted[0]["severity"] == "warning"
    assert "Ankle boot" in shifted[0]["description"]
    assert properties["anomalies"]["errors"] == 0 and "halt" not in properties
    assert properties["anomalies"]["warnings"] == len(anomalies) >= 1


def test_out_of_domain_label_and_wrong_shape_halt_the_pipeline(run_stage, examples_artifact,
                                                               tmp_path):
    import tensorflow as tf

    # A corrupted copy of the Examples: one test record with label 12 and a 14x14 image,
    # the kind of record a hand-edited or foreign dataset could hold.
    folder = tmp_path / "examples"
    shutil.copytree(examples_artifact.path, folder)
    (shard,) = folder.glob("examples-test.tfrecord-*")
    records = [record.numpy() for record in tf.data.TFRecordDataset(str(shard))]
    image = tf.io.encode_png(tf.zeros((14, 14, 1), tf.uint8)).numpy()
    bad = tf.train.Example(features=tf.train.Features(feature={
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"handmade:0"])),
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[12])),
    }))
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for record in records + [bad.SerializeToString()]:
            writer.write(record)

    examples = Artifact(folder, "Examples", "handmade", {})
    properties, artifacts = run_stage("statistics", {"examples": examples}, {})
    errors = [a for a in load_json(artifacts["statistics"].path / "anomalies.json")["anomalies"]
              if a["severity"] == "error"]
    assert {(a["split"], a["feature"]) for a in errors} == {("test", "label"), ("test", "image")}
    assert properties["anomalies"]["errors"] == 2
    assert "test/label" in properties["halt"] and "12" in properties["halt"]
    assert "14x14x1" in properties["halt"]
