"""The pipeline under faults and careless use: two runs on one root, configs that cannot run,
a gzip file damaged in the middle, statistics and schema read by TFDV's own protos."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from edgepipe import cli
from edgepipe.pipeline import runner
from edgepipe.pipeline.store import Store
from tests.conftest import REPO, ingest_config
from tests.pipeline.test_runner import NODES, load

# --- two runs on one root ---------------------------------------------------------------

RUN = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
from tests.pipeline.test_runner import NODES, load
from edgepipe.pipeline import runner
summary = runner.run(load(sys.argv[1], sleep_seconds=float(sys.argv[2])), nodes=NODES)
print("SUMMARY", summary["run_id"], {s["name"]: s["status"] for s in summary["stages"]})
"""


def start(root: pathlib.Path, sleep_seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN, str(root), str(sleep_seconds)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_run_on_the_same_root_waits_for_the_first_then_reuses_its_result(tmp_path):
    """Before: the second run computed the same key beside the first, in the same scratch
    folder (training "resumed" from the other run's live checkpoint)."""
    first = start(tmp_path, 3.0)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("staging/doubled-*/doubled/started")):
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.02)
    second = start(tmp_path, 3.0)
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs[1][1]
    first_id = outputs[0][0].split()[1]
    assert "'doubled': 'ran'" in outputs[0][0]
    assert "'doubled': 'cached'" in outputs[1][0]
    # After doubled, either run may take total's lock first: it is computed once either way.
    assert ("'total': 'ran'" in outputs[0][0]) != ("'total': 'ran'" in outputs[1][0])
    assert f"being computed by run {first_id} (pid {first.pid})" in outputs[1][1]
    started = list(tmp_path.glob("artifacts/doubled/*/doubled/started"))
    assert len(started) == 1  # computed once
    latest = json.loads((tmp_path / "runs" / "latest.json").read_text())
    assert latest["status"] == "succeeded"


def test_a_killed_lock_holder_does_not_block_the_next_run(tmp_path):
    first = start(tmp_path, 60.0)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("staging/doubled-*/doubled/started")):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    first.kill()
    first.wait()
    summary = runner.run(load(tmp_path), nodes=NODES)  # the kernel released the lock
    assert [stage["status"] for stage in summary["stages"]] == ["cached", "ran", "ran"]


def test_the_run_summary_is_replaced_whole(tmp_path):
    store = Store(tmp_path)
    store.write_run_summary({"run_id": "a", "status": "succeeded", "stages": []})
    assert not [path for path in (tmp_path / "runs").iterdir() if path.name.startswith(".")]
    assert json.loads((tmp_path / "runs" / "latest.json").read_text())["run_id"] == "a"


# --- configs that cannot run: exit 2 before any stage ---------------------------------------

def quickstart_with(tmp_path, old: str, new: str) -> pathlib.Path:
    text = (REPO / "configs" / "quickstart.toml").read_text().replace('"../data/', f'"{REPO}/data/')
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new).replace('root = "../artifacts/quickstart"',
                                                   f'root = "{tmp_path / "root"}"'))
    return path


@pytest.mark.parametrize("old, new, expected", [
    ('t10k-labels-idx1-ubyte.gz"', '"', r"\[ingest\].*test_labels = .*/data/fashion_mnist/? is a "
     "folder; the idx source reads a file there"),
    ('model = "cnn"', 'model = "cnnn"', r"\[train\] model: .*Unknown model 'cnnn'.*cnn_bn"),
    ('model = "cnn"', 'model = "cnn"\nmodel_options = {filter = [8]}',
     r"\[train\] model_options: .*unknown option\(s\) \['filter'\].*filters"),
], ids=["folder-for-file", "unknown-model", "unknown-option"])
def test_a_config_that_cannot_run_stops_before_any_stage(tmp_path, capsys, old, new, expected):
    """Before: a folder given for a file was an IsADirectoryError traceback (exit 1), and an
    unknown model or option failed in train after ingest and statistics had run."""
    config = quickstart_with(tmp_path, old, new)
    assert cli.main(["run", str(config)]) == 2
    assert re.search(expected, capsys.readouterr().err, re.S)
    assert not (tmp_path / "root").exists()


def test_a_beam_option_without_a_key_and_a_non_utf8_config_are_config_errors(tmp_path, capsys):
    config = quickstart_with(tmp_path, 'seed = 42', 'seed = 42')
    assert cli.main(["run", str(config), "--beam-option", "=2"]) == 2
    assert "--beam-option '=2': expected key=value" in capsys.readouterr().err
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(config.read_bytes().replace(b'name = "quickstart"',
                                                   'name = "caf\u00e9"'.encode("latin-1")))
    assert cli.main(["run", str(latin1)]) == 2
    assert f"{latin1}: not UTF-8 text" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


# --- a gzip file damaged in the middle -----------------------------------------------------

def test_a_gzip_file_corrupted_in_the_middle_is_quarantined_with_its_offset(
        run_stage, tiny_fashion_mnist, tmp_path):
    """Before: TFDS's "Requested slice [:1] incompatible with 0 examples", naming no file."""
    damaged = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = bytearray(pathlib.Path(tiny_fashion_mnist["test_images"]).read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(byte ^ 0xFF for byte in data[middle:middle + 8])
    damaged.write_bytes(bytes(data))
    config = {**ingest_config(tiny_fashion_mnist), "test_images": str(damaged)}
    with pytest.raises(ValueError, match=rf"corrupt_file.*{damaged}.*corrupt at compressed byte"):
        run_stage("ingest", {}, config)
    properties, artifacts = run_stage("ingest", {}, {**config, "max_quarantine_fraction": 1.0})
    rejected = [json.loads(line) for line in
                (artifacts["examples"].path / "quarantine" / "records.jsonl").read_text().splitlines()]
    corrupt = [record for record in rejected if record["reason"] == "corrupt_file"]
    assert corrupt and all(str(damaged) in record["detail"] for record in corrupt)
    assert all("compressed byte" in record["detail"] for record in corrupt)
    accounting = properties["accounting"]["test"]
    assert accounting["read"] == 100 == accounting["written"] + accounting["quarantined"]
    assert properties["quarantined"]["by_reason"]["corrupt_file"] == len(corrupt)


# --- statistics and schema as TFDV's tools read them ---------------------------------------

def test_statistics_and_schema_agree_on_every_features_type_and_shape(statistics_artifacts):
    """Before: statistics.pb typed the image INT while schema.pbtxt said BYTES, and the
    shape was only an annotation tag."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

    statistics = statistics_pb2.DatasetFeatureStatisticsList.FromString(
        (statistics_artifacts["statistics"].path / "statistics.pb").read_bytes())
    schema = text_format.Parse(
        (statistics_artifacts["schema"].path / "schema.pbtxt").read_text(), schema_pb2.Schema())
    stats_types = {statistics_pb2.FeatureNameStatistics.INT: schema_pb2.INT,
                   statistics_pb2.FeatureNameStatistics.FLOAT: schema_pb2.FLOAT,
                   statistics_pb2.FeatureNameStatistics.STRING: schema_pb2.BYTES,
                   statistics_pb2.FeatureNameStatistics.BYTES: schema_pb2.BYTES}
    expected = {feature.name: feature for feature in schema.feature}
    for dataset in statistics.datasets:
        found = {".".join(feature.path.step): feature for feature in dataset.features}
        assert set(found) == set(expected), dataset.name
        for name, feature in found.items():
            assert stats_types[feature.type] == expected[name].type, (dataset.name, name)
            shape = next((json.loads(stat.str) for stat in feature.custom_stats
                          if stat.name == "shape"), None)
            if expected[name].HasField("shape"):
                assert shape == [dim.size for dim in expected[name].shape.dim], name
    assert [dim.size for dim in expected["image"].shape.dim] == [28, 28, 1]
