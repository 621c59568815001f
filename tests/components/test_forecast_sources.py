"""Forecasting sources besides the long CSV: TFRecord files of tf.train.Example series (read
without TensorFlow) and the wide CSV with covariates shared by every series."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.fresh_process import INGEST_IN_A_FRESH_PROCESS

HORIZON, LOOKBACK, LENGTH = 3, 6, 30
FORECAST = {"horizon": HORIZON, "lookback": LOOKBACK, "seasonality": 1}


def example(tf, name, times, values, promo=None):
    feature = {"series_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name]))}
    if times and isinstance(times[0], bytes):
        feature["timestamp"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=times))
    elif times:
        feature["timestamp"] = tf.train.Feature(int64_list=tf.train.Int64List(value=times))
    if values is not None:
        feature["value"] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    if promo is not None:
        feature["promo"] = tf.train.Feature(float_list=tf.train.FloatList(value=promo))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_series(path):
    """Written by TensorFlow's own writer: three good series (one with date strings), one
    with a NaN (repaired), one whose covariate list is short, one without values, bytes that
    are no Example, and a cut record at the end."""
    import tensorflow as tf

    steps = list(range(2000, 2000 + LENGTH))
    line = [10.0 + 0.5 * i for i in range(LENGTH)]
    promo = [float(i % 2) for i in range(LENGTH)]
    dates = [f"{year}-01-01".encode() for year in steps]
    holey = list(line)
    holey[7] = float("nan")
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example(tf, b"up", steps, line, promo))
        writer.write(example(tf, b"down", steps, line[::-1], promo))
        writer.write(example(tf, b"dated", dates, [2 * v for v in line], promo))
        writer.write(example(tf, b"holey", steps, holey, promo))
        writer.write(example(tf, b"short_promo", steps, line, promo[:-2]))
        writer.write(example(tf, b"no_values", steps, None, promo))
        writer.write(b"\xff\xfe not a protocol buffer")
    whole = path.read_bytes()
    with tf.io.TFRecordWriter(str(path) + ".tail") as writer:
        writer.write(example(tf, b"cut", steps, line, promo))
    path.write_bytes(whole + (path.parent / (path.name + ".tail")).read_bytes()[:40])
    return line


def test_tfrecord_series_are_read_without_tensorflow_and_bad_records_quarantined(tmp_path):
    path = tmp_path / "series.tfrecord"
    line = write_series(path)
    config = {"task": "forecasting", "source": "tfrecord", "train": str(path),
              "covariate_columns": ["promo"], "fill": "interpolate",
              "max_quarantine_fraction": 0.9, "forecast": FORECAST}
    completed = subprocess.run(
        [sys.executable, "-c", INGEST_IN_A_FRESH_PROCESS, json.dumps(config),
         str(tmp_path / "store")], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert outcome["tensorflow"] is False
    properties = outcome["properties"]
    assert properties["series"] == {"read": 8, "kept": 4, "quarantined": 4, "repaired": 1}
    assert properties["repaired"] == {"holey": {"non_numeric_value": 1}}
    reasons = properties["quarantined"]["by_reason"]
    assert reasons == {"wrong_length": 1, "missing_feature": 1, "unparseable_record": 1,
                       "truncated_record": 1}
    quarantine = [json.loads(text) for text in (
        tmp_path / outcome["folder"] / "quarantine" / "records.jsonl").read_text().splitlines()]
    by_reason = {record["reason"]: record for record in quarantine}
    assert by_reason["wrong_length"]["source"] == f"{path}:4"
    assert "'promo'" in by_reason["wrong_length"]["detail"]
    assert "'value'" in by_reason["missing_feature"]["detail"]
    assert by_reason["truncated_record"]["source"] == f"{path}:7"
    assert properties["splits"]["test"] == 4
    assert properties["input_shape"] == [LOOKBACK, 3]

    from edgepipe.contracts import forecast_windows

    series = forecast_windows.read_series(outcome["folder"])
    assert np.allclose(series["up"]["values"], line)
    assert series["up"]["covariates"][:2] == [[0.0], [1.0]]
    assert np.allclose(series["dated"]["values"], [2 * v for v in line])
    assert series["dated"]["timestamps"][0].startswith("2000-01-01")
    assert series["holey"]["values"][7] == pytest.approx((line[6] + line[8]) / 2)


def test_a_tfrecord_forecasting_config_takes_the_series_keys_only():
    from edgepipe.components.ingest.sources.config import Config

    path = str(REPO / "data" / "fertility" / "fertility.csv")  # any existing file
    common = {"task": "forecasting", "source": "tfrecord", "train": path,
              "forecast": FORECAST}
    assert Config.model_validate({**common, "time_column": "year"}).time_column == "year"
    with pytest.raises(ValueError, match="feature_key"):
        Config.model_validate({**common, "feature_key": "x"})
    with pytest.raises(ValueError, match="format"):
        Config.model_validate({**common, "format": "wide"})


def test_wide_covariate_columns_are_shared_by_every_series_not_series(run_stage, tmp_path):
    from edgepipe.components.shared import examples_io
    from edgepipe.contracts import forecast_windows

    path = tmp_path / "wide.csv"
    lines = ["year,north,holiday,south,temperature"]
    for step in range(LENGTH):
        lines.append(f"{2000 + step},{10 + step},{step % 2},{50 - step},{20 + step % 5}")
    path.write_text("\n".join(lines) + "\n")
    properties, outputs = run_stage("ingest", {}, {
        "task": "forecasting", "source": "csv", "train": str(path), "format": "wide",
        "time_column": "year", "covariate_columns": ["holiday", "temperature"],
        "forecast": FORECAST})
    assert properties["series"]["kept"] == 2 and properties["input_shape"] == [LOOKBACK, 4]
    series = forecast_windows.read_series(outputs["examples"].path)
    assert sorted(series) == ["north", "south"]
    for name in ("north", "south"):
        assert series[name]["covariates"] == [[float(step % 2), float(20 + step % 5)]
                                              for step in range(LENGTH)]
    assert series["south"]["values"][:2] == [50.0, 49.0]
    test = examples_io.load_numpy(outputs["examples"].path, "test")
    row = [forecast_windows.series_of(name) for name in test["id"]].index("north")
    window = np.asarray(test["sequence"][row])   # value, holiday, temperature, mask
    steps = np.arange(LENGTH - HORIZON - LOOKBACK, LENGTH - HORIZON)
    assert np.allclose(window[:, 0], 10 + steps) and np.allclose(window[:, 1], steps % 2)
    assert np.allclose(window[:, 2], 20 + steps % 5) and (window[:, 3] == 1).all()
    # a named covariate the header lacks is an error naming it
    with pytest.raises(ValueError, match="humidity"):
        run_stage("ingest", {}, {
            "task": "forecasting", "source": "csv", "train": str(path), "format": "wide",
            "time_column": "year", "covariate_columns": ["humidity"], "forecast": FORECAST})


def test_tfrecord_rows_of_a_gzip_file_and_a_record_failing_its_crc(tmp_path):
    import types

    import tensorflow as tf

    from edgepipe.components.ingest import series_tfrecord

    path = tmp_path / "series.tfrecord.gz"
    steps = [1, 2, 3]
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for name in (b"a", b"b", b"c"):
            writer.write(example(tf, name, steps, [1.0, 2.5, 4.0]))
    config = types.SimpleNamespace(series_column="series_id", time_column="timestamp",
                                   covariate_columns=())
    layout = {"target": "value"}
    rows = list(series_tfrecord.read_rows(str(path), config, layout))
    assert [tag for tag, _ in rows] == ["row"] * 9
    assert rows[4] == ("row", ("b", (f"{path}:1:1", "2", ["2.5"])))
    # the second record's data corrupted: it alone is rejected, the third is still read
    import gzip

    data = bytearray(gzip.decompress(path.read_bytes()))
    first = 12 + int.from_bytes(data[:8], "little") + 4
    data[first + 12 + 5] ^= 0xFF
    plain = tmp_path / "corrupt.tfrecord"
    plain.write_bytes(bytes(data))
    rows = list(series_tfrecord.read_rows(str(plain), config, layout))
    rejected = [value for tag, value in rows if tag == "rejected"]
    assert len(rejected) == 1 and rejected[0]["reason"] == "corrupt_record"
    assert rejected[0]["source"] == f"{plain}:1" and "CRC" in rejected[0]["detail"]
    assert {value[0] for tag, value in rows if tag == "row"} == {"a", "c"}
