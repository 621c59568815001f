"""The `ts` source on the real JapaneseVowels files, and on a file with broken lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from tests.conftest import JAPANESE_VOWELS


def parse_series(path):
    """An independent reading of a .ts file: (list of [steps, channels] arrays, labels)."""
    lines = path.read_text().splitlines()
    data = lines[[line.strip() for line in lines].index("@data") + 1:]
    series, labels = [], []
    for line in data:
        *channels, label = line.split(":")
        series.append(np.array([[float(v) for v in c.split(",")] for c in channels]).T)
        labels.append(label)
    return series, labels


def test_japanese_vowels_round_trip(vowels_examples):
    properties, examples = vowels_examples
    assert properties["read"] == {"train": 270, "test": 370}
    assert properties["quarantined"]["total"] == 0
    assert properties["splits"]["test"] == 370
    assert properties["splits"]["train"] + properties["splits"]["validation"] == 270
    assert properties["input_feature"] == "sequence" and properties["input_shape"] == [None, 12]
    assert examples_io.input_feature(examples.path) == "sequence"
    assert examples_io.input_shape(examples.path) == (None, 12)
    assert examples_io.class_names(examples.path) == [str(k) for k in range(1, 10)]

    lengths = []
    for origin, splits in (("TRAIN", ("train", "validation")), ("TEST", ("test",))):
        series, labels = parse_series(JAPANESE_VOWELS / f"JapaneseVowels_{origin}.ts")
        for split in splits:
            data = examples_io.load_numpy(examples.path, split)
            assert data["sequence"].dtype == object
            for record_id, values, label in zip(data["id"], data["sequence"], data["label"]):
                name, index = record_id.rsplit(":", 1)
                assert name == f"JapaneseVowels_{origin}.ts"
                np.testing.assert_array_equal(values, series[int(index)].astype(np.float32))
                assert str(label + 1) == labels[int(index)]
                lengths.append(len(values))
    assert (min(lengths), max(lengths)) == (7, 29) and len(lengths) == 640

    (example,) = examples_io.as_dataset(examples.path, "test").take(1).as_numpy_iterator()
    assert example["sequence"].dtype == np.float32 and example["sequence"].shape[1] == 12


def broken_ts(tmp_path):
    """The real header and first 20 series of the train file, plus six broken lines."""
    lines = (JAPANESE_VOWELS / "JapaneseVowels_TRAIN.ts").read_text().splitlines()
    start = [line.strip() for line in lines].index("@data") + 1
    good = lines[start:start + 20]
    channels = good[0].split(":")
    broken = [
        ":".join(channels[1:]),                                   # 11 channels + label
        ":".join(channels[:-1]),                                  # 12 channels, no label
        ":".join(channels[:-1] + ["12"]),                         # label not in @classLabel
        ":".join(["?," + channels[0]] + channels[1:]),            # missing value
        ":".join([channels[0] + ",0.5"] + channels[1:]),          # ragged channels
        ":".join(["abc"] + channels[1:]),                         # not a number
    ]
    path = tmp_path / "broken_TRAIN.ts"
    path.write_text("\n".join(lines[:start] + good[:10] + broken + good[10:]) + "\n")
    return path, start


def test_broken_lines_are_quarantined_with_exact_accounting(run_stage, tmp_path):
    path, start = broken_ts(tmp_path)
    config = {"source": "ts", "train": str(path), "max_quarantine_fraction": 0.5,
              "validation_fraction": 0.2, "test_fraction": 0.25}
    properties, artifacts = run_stage("ingest", {}, config)
    rejected = [json.loads(line) for line in (artifacts["examples"].path / "quarantine"
                                              / "records.jsonl").read_text().splitlines()]
    expected = {
        11: "wrong_channel_count", 12: "missing_label", 13: "unknown_label",
        14: "missing_value", 15: "ragged_channels", 16: "unparseable_value",
    }
    # Source locations are 1-based line numbers of the file; ids count series from 0.
    assert {record["source"]: record["reason"] for record in rejected} == {
        f"{path}:{start + offset}": reason for offset, reason in expected.items()}
    assert {record["id"] for record in rejected} == {f"broken_TRAIN.ts:{i}" for i in range(10, 16)}
    assert {record["split"] for record in rejected} == {"all"}
    assert properties["read"] == {"all": 26}
    assert properties["accounting"]["all"] == {
        "read": 26, "written": 20, "quarantined": 6,
        "by_reason": {reason: 1 for reason in expected.values()}}
    assert sum(properties["splits"].values()) == 20 and properties["splits"]["test"] > 0

    with pytest.raises(ValueError, match="max_quarantine_fraction=0.1") as error:
        run_stage("ingest", {}, {**config, "max_quarantine_fraction": 0.1})
    assert f"{path}:{start + 11}" in str(error.value)


def test_header_errors_name_the_file(run_stage, tmp_path):
    no_labels = tmp_path / "unlabelled.ts"
    no_labels.write_text("@problemName x\n@dimensions 2\n@classLabel false\n@data\n1,2:3,4\n")
    with pytest.raises(ValueError, match="unlabelled.ts: @classLabel") as error:
        run_stage("ingest", {}, {"source": "ts", "train": str(no_labels)})
    assert "@classLabel true" in str(error.value)
