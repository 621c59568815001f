"""Unlabelled data at ingest: the `unlabeled` split of the Examples artifact, its accounting
and quarantine, for each source that has a label-free form."""

from __future__ import annotations

import gzip
import io
import json
import pathlib

import numpy as np
import pydantic
import pytest

from edgepipe.components.ingest.sources.config import Config
from edgepipe.components.shared import examples_io
from edgepipe.contracts import unlabeled_artifacts
from tests.conftest import JAPANESE_VOWELS, ingest_config


def quarantined(examples) -> list[dict]:
    path = examples.path / "quarantine" / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_unlabeled_images_file_becomes_the_unlabeled_split(semi_examples_artifact,
                                                              tiny_unlabeled):
    examples = semi_examples_artifact
    assert examples.properties["splits"]["unlabeled"] == 400
    assert examples.properties["accounting"]["unlabeled"] == {
        "read": 400, "written": 400, "quarantined": 0, "by_reason": {}}
    assert examples_io.split_names(examples.path) == ["train", "validation", "test", "unlabeled"]
    unlabeled = examples_io.load_numpy(examples.path, "unlabeled")
    assert set(unlabeled["label"].tolist()) == {-1}  # TFDS ClassLabel's "no label"
    assert sorted(unlabeled["id"]) == sorted(tiny_unlabeled["truth"])
    sources = unlabeled_artifacts.read_unlabeled_sources(examples.path)
    assert sources["unlabeled-images-idx3-ubyte.gz:7"] == f"{tiny_unlabeled['images']}:7"
    # The labelled splits are what they were without unlabelled data.
    assert examples.properties["splits"]["train"] + examples.properties["splits"][
        "validation"] == 300


def test_a_truncated_unlabeled_file_is_quarantined_and_accounted(run_stage, tiny_fashion_mnist,
                                                                 tiny_unlabeled, tmp_path):
    raw = gzip.decompress(pathlib.Path(tiny_unlabeled["images"]).read_bytes())
    short = tmp_path / "unlabeled-images-idx3-ubyte.gz"  # the header says 400, 390 remain
    short.write_bytes(gzip.compress(raw[: len(raw) - 10 * 28 * 28], mtime=0))
    config = {**ingest_config(tiny_fashion_mnist), "unlabeled": str(short),
              "max_quarantine_fraction": 0.05}
    properties, artifacts = run_stage("ingest", {}, config)
    assert properties["splits"]["unlabeled"] == 390
    assert properties["accounting"]["unlabeled"] == {
        "read": 400, "written": 390, "quarantined": 10, "by_reason": {"truncated_file": 10}}
    lost = [record for record in quarantined(artifacts["examples"])]
    assert {record["split"] for record in lost} == {"unlabeled"}
    assert sorted(record["source"] for record in lost) == sorted(
        f"{short}:{index}" for index in range(390, 400))


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_unlabeled_image_folder_with_a_broken_file(run_stage, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "train" / name).mkdir(parents=True)
        for index in range(6):
            (tmp_path / "train" / name / f"{index}.png").write_bytes(
                png(rng.integers(0, 256, (8, 8), dtype=np.uint8)))
    folder = tmp_path / "unlabeled"
    (folder / "batch2").mkdir(parents=True)
    for index in range(4):
        (folder / f"u{index}.png").write_bytes(png(rng.integers(0, 256, (8, 8), dtype=np.uint8)))
    (folder / "batch2" / "u9.png").write_bytes(png(np.zeros((8, 8), np.uint8)))
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image: ignored, like in class folders")
    properties, artifacts = run_stage("ingest", {}, {
        "source": "image_dir", "train": str(tmp_path / "train"), "unlabeled": str(folder),
        "max_quarantine_fraction": 0.5})
    assert properties["class_names"] == ["cat", "dog"]  # the unlabelled folder names no class
    assert properties["splits"]["unlabeled"] == 5
    assert properties["accounting"]["unlabeled"] == {
        "read": 6, "written": 5, "quarantined": 1, "by_reason": {"undecodable_image": 1}}
    (broken,) = quarantined(artifacts["examples"])
    assert broken["split"] == "unlabeled" and broken["source"] == str(folder / "broken.png")
    ids = examples_io.load_numpy(artifacts["examples"].path, "unlabeled")["id"]
    assert sorted(ids) == ["unlabeled/batch2/u9.png"] + [f"unlabeled/u{i}.png" for i in range(4)]
    sources = unlabeled_artifacts.read_unlabeled_sources(artifacts["examples"].path)
    assert sources["unlabeled/batch2/u9.png"] == str(folder / "batch2" / "u9.png")


def test_an_unlabeled_ts_file_without_class_labels(run_stage, tmp_path):
    """A .ts file that says @classLabel false holds series without labels."""
    lines = (JAPANESE_VOWELS / "JapaneseVowels_TEST.ts").read_text().splitlines()
    data = lines.index(next(line for line in lines if line.lower().startswith("@data")))
    header = [("@classLabel false" if line.lower().startswith("@classlabel") else line)
              for line in lines[:data + 1]]
    series = [line.rsplit(":", 1)[0] for line in lines[data + 1:data + 21] if line.strip()]
    series.append("1.0,2.0:3.0")  # 2 channels of 12: quarantined, and counted
    path = tmp_path / "unlabeled.ts"
    path.write_text("\n".join(header + series) + "\n")
    properties, artifacts = run_stage("ingest", {}, {
        "source": "ts", "train": str(JAPANESE_VOWELS / "JapaneseVowels_TRAIN.ts"),
        "test": str(JAPANESE_VOWELS / "JapaneseVowels_TEST.ts"), "unlabeled": str(path)})
    assert properties["accounting"]["unlabeled"] == {
        "read": 21, "written": 20, "quarantined": 1, "by_reason": {"wrong_channel_count": 1}}
    unlabeled = examples_io.load_numpy(artifacts["examples"].path, "unlabeled")
    assert unlabeled["sequence"][0].shape[1] == 12 and set(unlabeled["label"]) == {-1}


def test_sources_without_a_label_free_form_refuse_the_key():
    with pytest.raises(pydantic.ValidationError, match="unlabeled are not used by source 'tfds'"):
        Config.model_validate({"source": "tfds", "name": "mnist", "unlabeled": str(JAPANESE_VOWELS)})


def test_statistics_cover_the_unlabeled_split(semi_statistics_artifacts):
    from edgepipe.contracts import artifacts

    folder = semi_statistics_artifacts["statistics"].path
    statistics = artifacts.read_statistics(folder)
    assert statistics["splits"]["unlabeled"]["num_examples"] == 400
    drift = statistics["splits"]["unlabeled"]["drift"]
    assert drift["compared"] == "pixel-value histogram" and drift["distance"] < 0.1
    assert statistics["unlabeled_overlap"] == {"ids": 0, "content": 0, "examples": []}
    # The same data: no error (label -1 is not "out of domain" there), no drift warning.
    assert not [anomaly for anomaly in artifacts.read_anomalies(folder)
                if anomaly["split"] == "unlabeled"]
    assert semi_statistics_artifacts["statistics"].properties["anomalies"]["errors"] == 0


def test_unlabeled_copies_of_labelled_records_and_drift_are_reported(
        run_stage, tiny_fashion_mnist, tmp_path):
    """The train images file given again as unlabelled (every id and image shared), and a
    set of inverted images (another pixel distribution): both warnings, no halt."""
    from edgepipe.components.ingest.sources.idx import read_idx
    from edgepipe.contracts import artifacts
    from tests.conftest import write_idx_images

    config = {**ingest_config(tiny_fashion_mnist), "unlabeled": tiny_fashion_mnist["train_images"]}
    _, ingested = run_stage("ingest", {}, config)
    properties, statistics = run_stage("statistics", {"examples": ingested["examples"]}, {})
    overlap = artifacts.read_statistics(statistics["statistics"].path)["unlabeled_overlap"]
    assert overlap["ids"] == 300 and overlap["content"] >= 300
    first = overlap["examples"][0]
    assert first["kind"] == "id" and first["labelled"][0].split(":", 1)[0] in (
        "train", "validation")
    warnings = [anomaly["description"] for anomaly in
                artifacts.read_anomalies(statistics["statistics"].path)]
    assert any("300 unlabeled record(s) share their id" in text for text in warnings)
    assert properties["unlabeled"]["overlap"]["ids"] == 300 and "halt" not in properties

    inverted = tmp_path / "inverted-images-idx3-ubyte.gz"
    write_idx_images(255 - read_idx(tiny_fashion_mnist["test_images"], "images", 3), inverted)
    _, ingested = run_stage("ingest", {}, {**ingest_config(tiny_fashion_mnist),
                                           "unlabeled": str(inverted)})
    properties, statistics = run_stage("statistics", {"examples": ingested["examples"]}, {})
    warnings = [anomaly["description"] for anomaly in
                artifacts.read_anomalies(statistics["statistics"].path)]
    assert any("pixel-value histogram differs from train's" in text for text in warnings)
    assert properties["unlabeled"]["drift"]["distance"] > 0.1
