"""Ingest for task "forecasting": series in, windows out, cut in Beam.

    rows (series_rows.py: CSV; series_tfrecord.py: a tf.train.Example per series)
    -> GroupByKey(series) -> check / repair / quarantine each series
    (series_checks.py) -> windows, split by time -> TFRecord shards per split

Splits are by time, never shuffled: each series' last `horizon` points are its test window
(with `backtest_windows` N, its last N x horizon points are N test windows, one per rolling
origin), the `horizon` before them its validation window, and every window whose targets end
before those is a train window. A window's input is the `lookback` steps before its first target
(fewer at the start of a series: padding, marked by the mask channel, is added by
contracts/model_inputs.py and the tf.data pipeline). The Examples artifact also holds
forecast.json (the settings) and series/series.jsonl (each kept series, for the baselines
and MASE), and quarantine/records.jsonl (a quarantined series or unreadable row, with its
reason) and quarantine/repairs.jsonl (each repaired series' problems), both by series name.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import numpy as np

from edgepipe.components.ingest import series_checks, series_rows, series_tfrecord
from edgepipe.components.ingest.records import SPLITS, features_of
from edgepipe.contracts import artifacts, forecast_windows, storage

DATASET_NAME = artifacts.DATASET_NAME


def describe(config, layouts: dict) -> dict[str, Any]:
    """The Examples' features: windows [steps, value + covariates + mask], targets t+1..t+h."""
    forecast = config.forecast
    return {"feature": "sequence", "channels": 2 + len(config.covariate_columns),
            "class_names": [], "target_names": forecast_windows.horizon_names(forecast.horizon)}


def windows(values: np.ndarray, horizon: int, lookback: int, origins: int = 1):
    """(split, index of the first target step, input [steps, columns + 1], target [horizon])
    of a series [n, columns]: the test windows of the `origins` rolling origins (the last
    origins x horizon points, latest first), validation (the horizon before the earliest),
    then every train window (targets ending before validation: no test point is trained on)."""
    length = len(values)
    marked = np.concatenate([values, np.ones((length, 1))], axis=1).astype(np.float32)

    def cut(start: int):
        return marked[max(0, start - lookback):start], values[start:start + horizon, 0]

    for back in range(1, origins + 1):
        yield ("test", length - back * horizon, *cut(length - back * horizon))
    validation = length - (origins + 1) * horizon
    yield ("validation", validation, *cut(validation))
    for start in range(1, validation - horizon + 1):
        yield ("train", start, *cut(start))


def process_series(element, config, info: dict):
    """Tagged outputs of one series: its windows per split, or its quarantine line; its
    repairs; its series.jsonl line."""
    import apache_beam as beam

    name, rows = element
    rows = sorted(rows, key=lambda row: _line_order(row[0]))  # file order, whatever the runner
    source = rows[0][0].rsplit(":", 1)[0]
    yield beam.pvalue.TaggedOutput("series_read", 1)
    try:
        kept = series_checks.check_series(name, rows, config, info["channels"] - 1)
    except series_checks.Quarantined as problem:
        yield beam.pvalue.TaggedOutput("quarantine", json.dumps({
            "source": source, "id": name, "split": "all", "level": "series",
            "reason": problem.reason,
            "detail": problem.detail}))
        return
    if kept["repairs"]:
        yield beam.pvalue.TaggedOutput("repairs", json.dumps({
            "series": name, "fill": config.fill,
            "problems": dict(collections.Counter(kind for kind, _ in kept["repairs"])),
            "details": [detail for _, detail in kept["repairs"][:10]]}))
    values = kept["values"]
    yield beam.pvalue.TaggedOutput("series", json.dumps({
        "series": name, "source": source, "frequency": kept["frequency"],
        "timestamps": kept["timestamps"], "values": values[:, 0].tolist(),
        **({"covariates": values[:, 1:].tolist()} if values.shape[1] > 1 else {})}))
    features = features_of(info)
    for split, start, window, target in windows(values, config.forecast.horizon,
                                                config.forecast.lookback,
                                                config.forecast.backtest_windows):
        yield beam.pvalue.TaggedOutput(split, features.serialize_example({
            "id": forecast_windows.example_id(name, start), "sequence": window,
            "target": target.astype(np.float32)}))


def _line_order(location: str) -> tuple[str, int, int]:
    """A CSV row's "path:line", a TFRecord step's "path:record:step", in file order."""
    head, _, line = location.rpartition(":")
    path, _, record = head.rpartition(":")
    if record.isdigit():
        return path, int(record), int(line)
    return head, -1, int(line)


def write(config, info: dict, layouts: dict, folder, scratch, runtime) -> None:
    """One Beam pipeline: shards per split, series.jsonl, the quarantine and repairs files,
    and the number of series read in <scratch>/series_read.txt."""
    import apache_beam as beam

    from edgepipe.components.shared.beam_pipeline import create_pipeline

    storage.makedirs(storage.join(folder, "quarantine"))

    def text(pcollection, label, *path):
        return pcollection | label >> beam.io.WriteToText(
            storage.join(folder, *path), file_name_suffix=".jsonl", num_shards=1,
            shard_name_template="")

    with create_pipeline(runtime) as pipeline:
        read = (pipeline
                | "Files" >> beam.Create(sorted(layouts))
                | "ReadRows" >> beam.FlatMap(_rows_of, config, layouts)
                .with_outputs("row", "rejected"))
        series = (read.row
                  | "BySeries" >> beam.GroupByKey()
                  | "CheckAndCut" >> beam.FlatMap(process_series, config, info).with_outputs(
                      "quarantine", "repairs", "series", "series_read", *SPLITS))
        for split in SPLITS:
            _ = series[split] | f"Write{split.title()}" >> beam.io.WriteToTFRecord(
                storage.join(folder, f"{DATASET_NAME}-{split}.tfrecord"),
                num_shards=config.num_shards, shard_name_template="-SSSSS-of-NNNNN")
        rejected_rows = read.rejected | "RowJson" >> beam.Map(json.dumps)
        _ = text((series.quarantine, rejected_rows) | "Quarantine" >> beam.Flatten(),
                 "WriteQuarantine", "quarantine", "records")
        _ = text(series.repairs, "WriteRepairs", "quarantine", "repairs")
        _ = text(series.series, "WriteSeries", "series", "series")
        _ = (series.series_read | "CountSeries" >> beam.CombineGlobally(sum)
             | "CountText" >> beam.Map(str)
             | "WriteCount" >> beam.io.WriteToText(storage.join(scratch, "series_read"),
                                                   file_name_suffix=".txt", num_shards=1,
                                                   shard_name_template=""))


def _rows_of(path: str, config, layouts: dict):
    import apache_beam as beam

    reader = series_tfrecord if config.source == "tfrecord" else series_rows
    for tag, value in reader.read_rows(path, config, layouts[path]):
        yield beam.pvalue.TaggedOutput(tag, value)


def _layouts(config) -> dict[str, dict]:
    """{file: its layout}: a CSV's columns checked against its header; a TFRecord file's
    feature keys are checked per record (series_tfrecord.py)."""
    if config.source == "tfrecord":
        from edgepipe.components.ingest.sources import tfrecord

        target = config.target_columns[0] if config.target_columns else "value"
        return {path: {"header": [], "target": target, "series": []}
                for path in tfrecord.files(config)["all"]}
    return {config.train: series_rows.columns(config, config.train)}


def run(config, context, folder, scratch, write_metadata, shard_files, count_records,
        check_quarantine_fraction) -> dict[str, Any]:
    """The ingest stage for forecasting: its properties (series read, kept, quarantined and
    repaired by name, windows per split)."""
    if config.test:
        raise ValueError("[ingest] test: forecasting cuts each series' test window from its "
                         "own end (the last horizon points); give all the data as train.")
    layouts = _layouts(config)
    paths = sorted(layouts)
    info = describe(config, layouts)
    context.log.info("ingest: forecasting series from %s (%s format), horizon %d, lookback %d, "
                     "%d backtest origin(s)", paths, config.format, config.forecast.horizon,
                     config.forecast.lookback, config.forecast.backtest_windows)
    write(config, info, layouts, folder, scratch, context.runtime)
    storage.write_text(storage.join(folder, forecast_windows.SETTINGS_FILE), json.dumps({
        **config.forecast.model_dump(mode="json"),
        "min_history": config.forecast.required_history, "target": layouts[paths[0]]["target"],
        "covariates": list(config.covariate_columns), "fill": config.fill,
        "format": config.format}, indent=2))
    shards = shard_files(folder)
    lengths = {split: [count_records(shard) for shard in files] for split, files in shards.items()}
    counts = {split: sum(values) for split, values in lengths.items()}
    rejected = artifacts.read_quarantine(folder)
    read = int(storage.read_text(storage.join(scratch, "series_read.txt")).strip() or 0)
    repairs_text = storage.read_text(storage.join(folder, "quarantine", "repairs.jsonl"))
    repairs = [json.loads(line) for line in repairs_text.splitlines() if line.strip()]
    # a tfrecord record that cannot be used is a series lost before it could be named
    read += sum(1 for record in rejected if record.get("level") == "record")
    series_rejected = [record for record in rejected
                       if record.get("level") in ("series", "record")]
    if not read:
        raise ValueError(f"{paths}: no series with any readable row; check the columns.")
    check_quarantine_fraction({"all": read}, series_rejected, config.max_quarantine_fraction)
    kept = read - len(series_rejected)
    if not counts["test"]:
        raise ValueError("every series was quarantined; see quarantine/records.jsonl.")
    write_metadata(folder, _features(info), shards, lengths,
                   "Forecasting windows written by the edgepipe ingest stage.")
    context.log.info("ingest: %d series read, %d kept (%d repaired), %d quarantined; windows "
                     "%s", read, kept, len(repairs), len(series_rejected), counts)
    return {
        "source": config.source, "input_feature": "sequence", "splits": counts,
        "read": {"series": read}, "class_names": [], "target_names": info["target_names"],
        "input_shape": [config.forecast.lookback, info["channels"]],
        "series": {"read": read, "kept": kept, "quarantined": len(series_rejected),
                   "repaired": len(repairs)},
        "quarantined": {
            "total": len(rejected),
            "by_reason": dict(collections.Counter(r["reason"] for r in rejected)),
            "series": {record["id"]: record["reason"] for record in series_rejected}},
        "repaired": {record["series"]: record["problems"] for record in repairs},
    }


def _features(info: dict):
    from edgepipe.components.ingest.records import tfds_features

    return tfds_features(info)
