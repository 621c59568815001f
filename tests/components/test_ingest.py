"""The ingest stage on real IDX files: the dataset TFDS loads, splits, quarantine, bad files."""

from __future__ import annotations

import gzip
import json
import pathlib
import struct

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.components.ingest import records
from edgepipe.components.ingest import stage as ingest
from edgepipe.components.ingest.sources import idx
from edgepipe.pipeline.stage import Context, Runtime
from tests.conftest import CLASS_NAMES, REPO, ingest_config


def write_idx(path: pathlib.Path, array: np.ndarray) -> str:
    """Write a uint8 array as a gzip IDX file (magic 0x08 type, ndim)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))
    return str(path)


def tiny_idx_files(folder: pathlib.Path, train_labels, test_labels, seed=0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    files = {}
    for split, labels in (("train", train_labels), ("test", test_labels)):
        labels = np.asarray(labels, dtype=np.uint8)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        files[f"{split}_images"] = write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        files[f"{split}_labels"] = write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return files


def raw_arrays(files: dict[str, str], split: str) -> tuple[np.ndarray, np.ndarray]:
    images = idx.read_idx(files[f"{split}_images"], "images", 3)
    labels = idx.read_idx(files[f"{split}_labels"], "labels", 1)
    return images, labels


def test_ingest_writes_a_tfds_dataset_with_every_record(examples_artifact, tiny_fashion_mnist):
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(examples_artifact.path))
    sizes = {split: info.num_examples for split, info in builder.info.splits.items()}
    assert set(sizes) == {"train", "validation", "test"}
    assert sizes["test"] == 100
    assert sum(sizes.values()) == 400  # nothing in the real sample is quarantined
    assert 30 <= sizes["validation"] <= 90  # validation_fraction 0.2 of 300
    properties = examples_artifact.properties
    assert properties["splits"] == sizes
    assert properties["read"] == {"train": 300, "test": 100}
    assert properties["quarantined"]["total"] == 0
    assert properties["input_shape"] == [28, 28, 1]
    assert builder.info.features["label"].names == list(CLASS_NAMES)
    assert (examples_artifact.path / "quarantine" / "records.jsonl").read_text() == ""

    # Every image and label round-trips exactly, and ids are unique across splits.
    ids = []
    for origin, splits in (("train", ("train", "validation")), ("test", ("test",))):
        images, labels = raw_arrays(tiny_fashion_mnist, origin)
        for split in splits:
            data = examples_io.load_numpy(examples_artifact.path, split)
            indices = [int(record_id.rsplit(":", 1)[1]) for record_id in data["id"]]
            np.testing.assert_array_equal(data["image"][..., 0], images[indices])
            np.testing.assert_array_equal(data["label"], labels[indices])
            ids += list(data["id"])
    assert len(ids) == len(set(ids)) == 400


def test_split_assignment_is_deterministic_and_stable_when_data_is_added():
    ids = [f"train-images-idx3-ubyte.gz:{index}" for index in range(20000)]
    first = [records.assign_split(record_id, "train", 0.1) for record_id in ids[:10000]]
    grown = [records.assign_split(record_id, "train", 0.1) for record_id in ids]
    assert grown[:10000] == first  # appending records never moves existing ones
    assert abs(grown.count("validation") / len(ids) - 0.1) < 0.01
    # Raising the fraction only moves records from train to validation, never back.
    wider = [records.assign_split(record_id, "train", 0.2) for record_id in ids]
    assert all(w == "validation" for g, w in zip(grown, wider) if g == "validation")
    assert {records.assign_split(record_id, "test", 0.5) for record_id in ids[:100]} == {"test"}


def decode_example(serialized: bytes) -> tuple[str, int, tuple]:
    import tensorflow as tf

    feature = tf.train.Example.FromString(serialized).features.feature
    image = tf.io.decode_png(feature["image"].bytes_list.value[0]).numpy()
    return (feature["id"].bytes_list.value[0].decode(), feature["label"].int64_list.value[0],
            image.shape)


def test_read_chunks_and_route_records_transforms(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    labels = [3, 1, 4, 1, 5, 9, 2, 6, 12]  # 12 is not a class of the 10
    files = tiny_idx_files(tmp_path, train_labels=labels, test_labels=[0])
    name = pathlib.Path(files["train_images"]).name
    ids = [f"{name}:{index}" for index in range(9)]
    config = ingest.Config.model_validate({**ingest_config(files), "validation_fraction": 0.5})
    info = {"feature": "image", "shape": [28, 28, 1], "class_names": list(CLASS_NAMES)}
    with TestPipeline(runner="FnApiRunner") as pipeline:  # not Prism: no binary download
        routed = (pipeline | records.ReadChunks(config, info)
                  | records.RouteRecords(config, info))
        for split in ("train", "validation"):
            expected = [(record_id, label, (28, 28, 1))
                        for record_id, label in zip(ids[:8], labels)
                        if records.assign_split(record_id, "train", 0.5) == split]
            assert_that(routed[split] | f"Decode{split}" >> beam.Map(decode_example),
                        equal_to(expected), label=f"Check{split}")
        test_name = pathlib.Path(files["test_images"]).name
        assert_that(routed.test | "DecodeTest" >> beam.Map(decode_example),
                    equal_to([(f"{test_name}:0", 0, (28, 28, 1))]), label="CheckTest")
        assert_that(routed.read, equal_to([("train", 9), ("test", 1)]), label="CheckRead")
        assert_that(routed.quarantine | beam.Map(json.loads), equal_to([{
            "source": f"{files['train_labels']}:8", "id": ids[8], "split": "train",
            "reason": "label_out_of_range",
            "detail": "label 12 is not in 0..9 (class_names has 10 entries)"}]),
            label="CheckQuarantine")


def test_corrupt_files_fail_naming_the_file(run_stage, tiny_fashion_mnist):
    cases = [
        ({"train_images": tiny_fashion_mnist["train_labels"]}, "magic number"),
        ({"test_labels": tiny_fashion_mnist["train_labels"]}, "100 images but .* 300 labels"),
    ]
    for change, expected in cases:
        files = {**tiny_fashion_mnist, **change}
        with pytest.raises(Exception, match=expected) as error:
            run_stage("ingest", {}, ingest_config(files))
        bad_file = next(iter(change.values()))
        assert bad_file in str(error.value)


def test_truncated_files_keep_complete_records_and_quarantine_the_rest(
        run_stage, tiny_fashion_mnist, tmp_path):
    data = pathlib.Path(tiny_fashion_mnist["train_images"]).read_bytes()
    truncated = tmp_path / "train-images-idx3-ubyte.gz"  # a download cut in the middle
    truncated.write_bytes(data[: len(data) // 2])
    raw = gzip.decompress(data)
    short = tmp_path / "t10k-images-idx3-ubyte.gz"  # valid gzip, header says 100, holds 97
    test_raw = gzip.decompress(pathlib.Path(tiny_fashion_mnist["test_images"]).read_bytes())
    short.write_bytes(gzip.compress(test_raw[: len(test_raw) - 3 * 28 * 28], mtime=0))
    files = {**tiny_fashion_mnist, "train_images": str(truncated), "test_images": str(short)}
    config = {**ingest_config(files), "max_quarantine_fraction": 1.0}
    properties, artifacts = run_stage("ingest", {}, config)

    kept = len(idx.read_idx_available(str(truncated), "images", 3)[0])
    assert 0 < kept < 300
    rejected = [json.loads(line) for line in (artifacts["examples"].path / "quarantine"
                                              / "records.jsonl").read_text().splitlines()]
    assert sorted(record["source"] for record in rejected) == sorted(
        [f"{files['train_labels']}:{index}" for index in range(kept, 300)]
        + [f"{files['test_labels']}:{index}" for index in (97, 98, 99)])
    assert {record["reason"] for record in rejected} == {"truncated_file"}
    assert "gzip stream is truncated" in rejected[0]["detail"] or \
        "declares 100 records" in rejected[0]["detail"]
    assert properties["accounting"] == {
        "train": {"read": 300, "written": kept, "quarantined": 300 - kept,
                  "by_reason": {"truncated_file": 300 - kept}},
        "test": {"read": 100, "written": 97, "quarantined": 3,
                 "by_reason": {"truncated_file": 3}},
    }
    # The records that survived are the original ones, byte for byte.
    train = examples_io.load_numpy(artifacts["examples"].path, "train")
    indices = [int(record_id.rsplit(":", 1)[1]) for record_id in train["id"]]
    np.testing.assert_array_equal(train["image"][..., 0], np.frombuffer(
        raw[16:], np.uint8).reshape(300, 28, 28)[indices])

    with pytest.raises(ValueError, match="truncated_file") as error:
        run_stage("ingest", {}, {**config, "max_quarantine_fraction": 0.01})
    assert str(truncated) in str(error.value) and "max_quarantine_fraction" in str(error.value)


def test_out_of_range_labels_are_quarantined_and_counted(run_stage, tmp_path):
    train_labels = [0, 1, 2, 3, 12, 4, 5, 6, 7, 8, 9, 10] + [1] * 8
    files = tiny_idx_files(tmp_path, train_labels=train_labels, test_labels=[2, 11, 3, 4])
    config = {**ingest_config(files), "max_quarantine_fraction": 0.2}
    properties, artifacts = run_stage("ingest", {}, config)
    folder = artifacts["examples"].path

    rejected = [json.loads(line) for line in
                (folder / "quarantine" / "records.jsonl").read_text().splitlines()]
    assert sorted(record["source"] for record in rejected) == sorted([
        f"{files['train_labels']}:4", f"{files['train_labels']}:11", f"{files['test_labels']}:1",
    ])
    assert {record["reason"] for record in rejected} == {"label_out_of_range"}
    assert properties["quarantined"] == {"total": 3, "by_reason": {"label_out_of_range": 3}}
    assert properties["read"] == {"train": 20, "test": 4}
    assert sum(properties["splits"].values()) + 3 == 24
    assert examples_io.split_size(folder, "test") == 3

    with pytest.raises(ValueError, match="label_out_of_range") as error:
        run_stage("ingest", {}, {**config, "max_quarantine_fraction": 0.1})
    assert "max_quarantine_fraction" in str(error.value)
    assert f"{files['train_labels']}:4" in str(error.value)


def test_multi_processing_runner_writes_the_same_dataset(run_stage, examples_artifact,
                                                         tiny_fashion_mnist):
    config = ingest.Config.model_validate({**ingest_config(tiny_fashion_mnist), "num_shards": 2})
    runtime = Runtime(beam_options=(("direct_running_mode", "multi_processing"),
                                    ("direct_num_workers", "2")))
    context = Context(pipeline_name="tests", run_id="multi", seed=7, runtime=runtime,
                      scratch_dir=run_stage.store.scratch_dir("ingest", "multi"))
    _, artifacts = run_stage.store.execute(ingest.SPEC, "multi", {}, config, context)
    folder = artifacts["examples"].path
    assert len(list(folder.glob("examples-train.tfrecord-*-of-00002"))) == 2
    for split in ("train", "validation", "test"):
        ours = examples_io.load_numpy(folder, split)
        reference = examples_io.load_numpy(examples_artifact.path, split)
        ours_order, reference_order = np.argsort(ours["id"]), np.argsort(reference["id"])
        for key in ("id", "image", "label"):
            np.testing.assert_array_equal(ours[key][ours_order], reference[key][reference_order])


def test_fingerprint_follows_raw_content(tiny_fashion_mnist, tmp_path):
    config = ingest.Config.model_validate(ingest_config(tiny_fashion_mnist))
    changed = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels = idx.read_idx(tiny_fashion_mnist["test_labels"], "labels", 1).copy()
    labels[0] = (labels[0] + 1) % 10
    write_idx(changed, labels)
    other = ingest.Config.model_validate(
        ingest_config({**tiny_fashion_mnist, "test_labels": str(changed)}))
    assert ingest.fingerprint(config) == ingest.fingerprint(config)
    assert ingest.fingerprint(config) != ingest.fingerprint(other)


def test_keys_of_another_source_are_config_errors():
    import pydantic

    vowels = "data/japanese_vowels/JapaneseVowels_TRAIN.ts"
    with pytest.raises(pydantic.ValidationError, match="label_column are not used by source "
                       "'ts'; it takes train, test"):
        ingest.Config.model_validate({"source": "ts", "train": vowels, "label_column": "y"},
                                     context={"base_dir": REPO})
    with pytest.raises(pydantic.ValidationError, match="source 'csv' needs label_column"):
        ingest.Config.model_validate({"source": "csv", "train": vowels},
                                     context={"base_dir": REPO})


def test_a_file_changed_while_read_fails_and_commits_nothing(run_stage, tmp_path, monkeypatch):
    source = tmp_path / "vowels_TRAIN.ts"
    source.write_bytes((REPO / "data/japanese_vowels/JapaneseVowels_TRAIN.ts").read_bytes())
    create_pipeline = ingest.create_pipeline

    def append_while_reading(runtime):  # another process appends a series meanwhile
        with source.open("a") as stream:
            stream.write(source.read_text().splitlines()[-1] + "\n")
        return create_pipeline(runtime)

    monkeypatch.setattr(ingest, "create_pipeline", append_while_reading)
    committed = set(run_stage.store.root.glob("artifacts/ingest/*"))
    with pytest.raises(RuntimeError, match="changed while ingest read them") as error:
        run_stage("ingest", {}, {"source": "ts", "train": str(source)})
    assert str(source) in str(error.value) and "re-run" in str(error.value)
    assert set(run_stage.store.root.glob("artifacts/ingest/*")) == committed
