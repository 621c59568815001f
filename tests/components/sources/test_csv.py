"""The `csv` source on Fashion-MNIST rows (784 pixel columns), with broken rows."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from tests.components.sources.conftest import folder_name, read_quarantine
from tests.conftest import CLASS_NAMES

NAMES = [folder_name(name) for name in CLASS_NAMES]


def write_csv(path, images, labels, extra_rows=()):
    header = ["id", "label"] + [f"p{k}" for k in range(784)]
    rows = [[f"img{index}", NAMES[label], *map(str, image.ravel())]
            for index, (image, label) in enumerate(zip(images, labels))]
    lines = [",".join(header)] + [",".join(row) for row in rows] + list(extra_rows)
    path.write_text("\n".join(lines) + "\n")
    return rows


@pytest.fixture(scope="module")
def csv_run(run_stage, fashion_arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv")
    images, labels = fashion_arrays["train"]
    row = ",".join(map(str, images[0].ravel()))
    broken = [
        f"bad0,,{row}",                                   # empty label
        f"bad1,{NAMES[2]},{row.rsplit(',', 1)[0]}",        # one value short
        f"bad2,{NAMES[2]},x,{row.split(',', 1)[1]}",       # not a number
        f"bad3,{NAMES[2]},,{row.split(',', 1)[1]}",        # empty value
    ]
    write_csv(folder / "train.csv", images[:30], labels[:30], broken)
    test_images, test_labels = fashion_arrays["test"]
    write_csv(folder / "test.csv", test_images[:10], test_labels[:10],
              [f"bad4,Unicorn,{row}"])                    # label not in train
    properties, artifacts = run_stage("ingest", {}, {
        "source": "csv", "train": str(folder / "train.csv"), "test": str(folder / "test.csv"),
        "label_column": "label", "id_column": "id", "max_quarantine_fraction": 0.2})
    return folder, properties, artifacts["examples"]


def test_rows_round_trip_as_fixed_length_series(csv_run, fashion_arrays):
    _, properties, examples = csv_run
    assert examples_io.input_feature(examples.path) == "sequence"
    assert examples_io.input_shape(examples.path) == (None, 1)
    names = examples_io.class_names(examples.path)
    assert names == sorted({NAMES[label] for label in fashion_arrays["train"][1][:30]})
    for split, origin in (("train", "train"), ("validation", "train"), ("test", "test")):
        images, labels = fashion_arrays[origin]
        data = examples_io.load_numpy(examples.path, split)
        for record_id, series, label in zip(data["id"], data["sequence"], data["label"]):
            index = int(record_id.removeprefix("img"))
            np.testing.assert_array_equal(series[:, 0], images[index].ravel())
            assert names[label] == NAMES[labels[index]]


def test_broken_rows_are_quarantined_exactly(csv_run):
    folder, properties, examples = csv_run
    rejected = {record["id"]: record for record in read_quarantine(examples)}
    assert {key: (record["reason"], record["source"]) for key, record in rejected.items()} == {
        "bad0": ("missing_label", f"{folder / 'train.csv'}:32"),
        "train.csv:31": ("wrong_column_count", f"{folder / 'train.csv'}:33"),
        "bad2": ("unparseable_value", f"{folder / 'train.csv'}:34"),
        "bad3": ("missing_value", f"{folder / 'train.csv'}:35"),
        "bad4": ("unknown_label", f"{folder / 'test.csv'}:12"),
    }
    assert properties["accounting"] == {
        "train": {"read": 34, "written": 30, "quarantined": 4, "by_reason": {
            "missing_label": 1, "wrong_column_count": 1, "unparseable_value": 1,
            "missing_value": 1}},
        "test": {"read": 11, "written": 10, "quarantined": 1, "by_reason": {"unknown_label": 1}},
    }


def test_unknown_column_is_a_clear_error(run_stage, csv_run):
    folder, _, _ = csv_run
    with pytest.raises(ValueError, match=r"no column\(s\) \['kind'\]; the header has"):
        run_stage("ingest", {}, {"source": "csv", "train": str(folder / "train.csv"),
                                 "label_column": "kind"})
