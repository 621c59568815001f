"""The ingest stage on real IDX files: the dataset TFDS loads, splits, quarantine, bad files."""

from __future__ import annotations

import gzip
import json
import pathlib
import struct

import numpy as np
import pytest

from components import examples_io, ingest
from pipeline.stage import Context, Runtime
from tests.conftest import CLASS_NAMES, ingest_config


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
    images = ingest.read_idx(files[f"{split}_images"], "images", 3)
    labels = ingest.read_idx(files[f"{split}_labels"], "labels", 1)
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
    first = [ingest.assign_split(record_id, "train", 0.1) for record_id in ids[:10000]]
    grown = [ingest.assign_split(record_id, "train", 0.1) for record_id in ids]
    assert grown[:10000] == first  # appending records never moves existing ones
    assert abs(grown.count("validation") / len(ids) - 0.1) < 0.01
    # Raising the fraction only moves records from train to validation, never back.
    wider = [ingest.assign_split(record_id, "train", 0.2) for record_id in ids]
    assert all(w == "validation" for g, w in zip(grown, wider) if g == "validation")
    assert {ingest.assign_split(record_id, "test", 0.5) for record_id in ids[:100]} == {"test"}


def test_read_idx_and_split_by_hash_transforms(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    files = tiny_idx_files(tmp_path, train_labels=[3, 1, 4, 1, 5, 9, 2, 6], test_labels=[0])
    name = pathlib.Path(files["train_images"]).name
    expected_ids = [f"{name}:{index}" for index in range(8)]
    with TestPipeline(runner="FnApiRunner") as pipeline:  # not Prism: no binary download
        records = pipeline | ingest.ReadIdx("train", files["train_images"], files["train_labels"])
        summary = records | "Summary" >> beam.Map(
            lambda r: (r["id"], r["label"], r["image"].shape, r["source"].endswith(
                f"train-labels-idx1-ubyte.gz:{r['id'].rsplit(':', 1)[1]}")))
        assert_that(summary, equal_to([
            (record_id, label, (28, 28, 1), True)
            for record_id, label in zip(expected_ids, [3, 1, 4, 1, 5, 9, 2, 6])
        ]))
        splits = records | ingest.SplitByHash(0.5)
        for split in ("train", "validation"):
            expected = [i for i in expected_ids if ingest.assign_split(i, "train", 0.5) == split]
            assert_that(splits[split] | f"Ids{split}" >> beam.Map(lambda r: r["id"]),
                        equal_to(expected), label=f"Check{split}")
        assert_that(splits["test"], equal_to([]), label="CheckTest")


def test_corrupt_files_fail_naming_the_file(run_stage, tiny_fashion_mnist, tmp_path):
    truncated = tmp_path / "train-images-idx3-ubyte.gz"
    data = pathlib.Path(tiny_fashion_mnist["train_images"]).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    # A valid gzip whose header promises 300 images but whose body holds 299.
    short = tmp_path / "short-images-idx3-ubyte.gz"
    raw = gzip.decompress(data)
    short.write_bytes(gzip.compress(raw[: len(raw) - 28 * 28], mtime=0))
    cases = [
        ({"train_images": str(truncated)}, "truncated or corrupt"),
        ({"train_images": str(short)}, "declares 300 records"),
        ({"train_images": tiny_fashion_mnist["train_labels"]}, "magic number"),
        ({"test_labels": tiny_fashion_mnist["train_labels"]}, "100 images but .* 300 labels"),
    ]
    for change, expected in cases:
        files = {**tiny_fashion_mnist, **change}
        with pytest.raises(Exception, match=expected) as error:
            run_stage("ingest", {}, ingest_config(files))
        bad_file = next(iter(change.values()))
        assert bad_file in str(error.value)


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
    _, artifacts = run_stage.store.execute(ingest, "multi", {}, config, context)
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
    labels = ingest.read_idx(tiny_fashion_mnist["test_labels"], "labels", 1).copy()
    labels[0] = (labels[0] + 1) % 10
    write_idx(changed, labels)
    other = ingest.Config.model_validate(
        ingest_config({**tiny_fashion_mnist, "test_labels": str(changed)}))
    assert ingest.fingerprint(config) == ingest.fingerprint(config)
    assert ingest.fingerprint(config) != ingest.fingerprint(other)
