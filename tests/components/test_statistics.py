"""The statistics stage: numbers that agree with numpy, TFDV-format protos, and anomalies."""

from __future__ import annotations

import json
import shutil

import numpy as np

from edgepipe.components.shared import examples_io
from edgepipe.pipeline.stage import Artifact
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
    assert fields["image"].type == schema_pb2.INT  # the decoded pixels, as the statistics say
    assert [dim.size for dim in fields["image"].shape.dim] == [28, 28, 1]
    assert (fields["image"].int_domain.min, fields["image"].int_domain.max) == (0, 255)
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
    result, artifacts = run_stage.result("statistics", {"examples": examples}, {})
    errors = [a for a in load_json(artifacts["statistics"].path / "anomalies.json")["anomalies"]
              if a["severity"] == "error"]
    assert {(a["split"], a["feature"]) for a in errors} == {("test", "label"), ("test", "image")}
    assert result.properties["anomalies"]["errors"] == 2
    assert "test/label" in result.halt and "12" in result.halt
    assert "14x14x1" in result.halt


def test_sequence_statistics_agree_with_numpy(run_stage, vowels_examples):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    _, examples = vowels_examples
    properties, artifacts = run_stage("statistics", {"examples": examples}, {})
    statistics = load_json(artifacts["statistics"].path / "statistics.json")["splits"]
    for split in ("train", "validation", "test"):
        data = examples_io.load_numpy(examples.path, split)
        values = np.concatenate(list(data["sequence"])).astype(np.float64)
        lengths = [len(series) for series in data["sequence"]]
        sequence = statistics[split]["features"]["sequence"]
        assert sequence["type"] == "sequence" and sequence["channels"] == 12
        np.testing.assert_allclose(sequence["mean"], values.mean(axis=0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sequence["std"], values.std(axis=0), rtol=1e-9)
        np.testing.assert_array_equal(sequence["min"], values.min(axis=0))
        np.testing.assert_array_equal(sequence["max"], values.max(axis=0))
        assert sequence["length"]["distribution"] == {
            str(length): lengths.count(length) for length in sorted(set(lengths))}
        assert (sequence["length"]["min"], sequence["length"]["max"]) == (min(lengths),
                                                                          max(lengths))
        assert sum(sequence["length"]["histogram"]["counts"]) == len(lengths)
        assert sequence["missing"] == 0
    assert properties["input_feature"] == "sequence" and properties["anomalies"]["errors"] == 0

    protos = statistics_pb2.DatasetFeatureStatisticsList.FromString(
        (artifacts["statistics"].path / "statistics.pb").read_bytes())
    train = {f.path.step[0]: f for f in protos.datasets[0].features}
    common = train["sequence"].num_stats.common_stats
    assert common.min_num_values == 12 * statistics["train"]["features"]["sequence"]["length"]["min"]
    assert sum(b.sample_count for b in common.num_values_histogram.buckets) == \
        statistics["train"]["num_examples"]
    assert "shape:-1,12" in (artifacts["schema"].path / "schema.pbtxt").read_text()


def test_saved_schema_turns_violations_into_errors(run_stage, vowels_examples, tmp_path):
    """The schema workflow: save the inferred schema, tighten it, validate new data with it."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    _, examples = vowels_examples
    _, first = run_stage("statistics", {"examples": examples}, {})
    schema = text_format.Parse((first["schema"].path / "schema.pbtxt").read_text(),
                               schema_pb2.Schema())
    features = {feature.name: feature for feature in schema.feature}
    features["sequence"].float_domain.min = -1.5  # channel 1 of the real data goes to -1.85
    features["sequence"].float_domain.max = 5.0
    del schema.string_domain[0].value[8]  # speaker 9 no longer a known class
    saved = tmp_path / "schema.pbtxt"
    saved.write_text(text_format.MessageToString(schema))

    result, artifacts = run_stage.result("statistics", {"examples": examples},
                                         {"schema": str(saved)})
    errors = [a for a in load_json(artifacts["statistics"].path / "anomalies.json")["anomalies"]
              if a["severity"] == "error"]
    speaker_nine = {split: bool((examples_io.load_numpy(examples.path, split)["label"] == 8).any())
                    for split in ("train", "validation", "test")}
    assert {(a["split"], a["feature"]) for a in errors} == {
        (split, "sequence") for split in speaker_nine} | {
        (split, "label") for split, present in speaker_nine.items() if present}
    assert "below the schema's float_domain min -1.5" in result.halt
    assert "unknown labels {'9':" in result.halt
    assert str(saved) in result.halt
    assert (artifacts["schema"].path / "schema.pbtxt").read_text() == saved.read_text()



def test_saved_schema_of_another_feature_kind_halts(run_stage, vowels_examples,
                                                    examples_artifact):
    _, examples = vowels_examples
    _, sequence = run_stage("statistics", {"examples": examples}, {})
    result, _ = run_stage.result("statistics", {"examples": examples_artifact},
                                 {"schema": str(sequence["schema"].path)})
    assert "the examples hold a 'image' feature but the schema expects 'sequence'" in \
        result.halt


def test_text_statistics_write_the_train_vocabulary_and_token_lengths(
        run_stage, text_examples_artifact, text_statistics_artifacts):
    import collections

    from edgepipe.contracts import text_tokens

    folder = text_statistics_artifacts["statistics"].path
    splits = {split: examples_io.load_numpy(text_examples_artifact.path, split)["text"]
              for split in ("train", "validation", "test")}
    train_counts = collections.Counter(
        token for text in splits["train"] for token in text_tokens.tokenize(text))
    vocabulary = text_tokens.read_vocabulary(folder / "vocabulary.txt")
    assert vocabulary == text_tokens.vocabulary_from_counts(train_counts, 10000)
    # Computed on train only: tokens seen only in the other splits are not in it.
    held_out_only = {token for split in ("validation", "test") for text in splits[split]
                     for token in text_tokens.tokenize(text)} - set(train_counts)
    assert held_out_only and not held_out_only & set(vocabulary)
    statistics = load_json(folder / "statistics.json")
    assert statistics["vocabulary"]["size"] == len(vocabulary) == len(train_counts) + 2
    assert text_statistics_artifacts["statistics"].properties["vocabulary"]["computed_on"] == "train"
    for split, texts in splits.items():
        text = statistics["splits"][split]["features"]["text"]
        lengths = [len(text_tokens.tokenize(value)) for value in texts]
        assert text["length_unit"] == "characters"
        assert text["tokens"]["max"] == max(lengths)
        assert text["tokens"]["distribution"] == {
            str(length): lengths.count(length) for length in sorted(set(lengths))}

    # A smaller vocabulary keeps the most frequent train tokens (a new statistics run).
    _, small = run_stage("statistics", {"examples": text_examples_artifact},
                         {"vocabulary_size": 12, "min_token_count": 2})
    assert text_tokens.read_vocabulary(small["statistics"].path / "vocabulary.txt") == \
        text_tokens.vocabulary_from_counts(train_counts, 12, 2)


def test_image_statistics_write_no_vocabulary(statistics_artifacts):
    folder = statistics_artifacts["statistics"].path
    assert not (folder / "vocabulary.txt").exists()
    assert "vocabulary" not in load_json(folder / "statistics.json")
