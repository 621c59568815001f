"""The rows of a forecasting tfrecord source: one tf.train.Example per series.

`[ingest] source = "tfrecord"`, `train` a glob of TFRecord files (`.gz`: GZIP). Each record
holds `series_column` (bytes, default "series_id"), `time_column` (an int64 or a bytes list,
default "timestamp"), `target_column` (a float list, default "value") and one float list per
name in `covariate_columns`, every list as long as the timestamps. A record becomes the same
rows as a CSV series (series_rows.py): (series, (location "path:record:step", time text,
[value text, covariate texts...])), so the per-series checks and repairs are the same. A
record that cannot be used (it does not parse, lacks a feature, its lists differ in length,
its CRC is wrong, the file is cut) is a rejection of its own with the reason, never dropped.

Ingest never imports TensorFlow: the frames are read by ingest/tfrecord_frames.py and the
Example is parsed with TFDS's TF-free copy of the proto (tensorflow_datasets.proto).
"""

from __future__ import annotations

from edgepipe.components.ingest import tfrecord_frames


def _rejection(location: str, reason: str, detail: str) -> dict:
    return {"source": location, "id": location, "split": "all", "level": "record",
            "reason": reason, "detail": detail}


def read_rows(path: str, config, layout: dict):
    """Tagged elements, as series_rows.read_rows: ("row", (series, (location, time,
    [texts]))) per step of each usable record, ("rejected", JSON fields) per unusable one."""
    with tfrecord_frames.opened(path) as stream:
        yield from _rows(path, tfrecord_frames.frames(stream), config, layout["target"])


def _rows(path: str, records, config, target: str):
    from google.protobuf.message import DecodeError
    from tensorflow_datasets.proto import tf_example_pb2

    for index, record in records:
        location = f"{path}:{index}"
        if isinstance(record, tuple):
            yield "rejected", _rejection(location, *record)
            continue
        try:
            feature = tf_example_pb2.Example.FromString(record).features.feature
        except DecodeError as error:
            yield "rejected", _rejection(location, "unparseable_record",
                                         f"not a tf.train.Example ({error})")
            continue
        parsed = _series(feature, config, target)
        if len(parsed) == 2:
            yield "rejected", _rejection(location, *parsed)
            continue
        name, times, columns = parsed
        for step, time in enumerate(times):
            yield "row", (name, (f"{location}:{step}", time,
                                 [repr(float(column[step])) for column in columns]))


def _series(feature, config, target: str):
    """(name, time texts, [value list, covariate lists...]), or (reason, detail)."""
    wanted = (config.series_column, config.time_column, target, *config.covariate_columns)
    absent = [key for key in wanted if key not in feature]
    if absent:
        return "missing_feature", (f"no feature(s) {absent}; the record has {sorted(feature)}. "
                                   "Set [ingest] series_column / time_column / target_column "
                                   "/ covariate_columns to the record's keys.")
    names = feature[config.series_column].bytes_list.value
    if len(names) != 1 or not names[0].strip():
        return "missing_series", (f"feature {config.series_column!r} must hold one non-empty "
                                  f"bytes value (the series name); it holds {list(names)[:3]}")
    time = feature[config.time_column]
    times = ([str(value) for value in time.int64_list.value]
             or [value.decode("utf-8", "replace") for value in time.bytes_list.value])
    if not times:
        return "missing_feature", (f"feature {config.time_column!r} holds no int64 or bytes "
                                   "timestamps")
    columns = []
    for key in (target, *config.covariate_columns):
        values = list(feature[key].float_list.value)
        if len(values) != len(times):
            return "wrong_length", (f"feature {key!r} holds {len(values)} float value(s) but "
                                    f"there are {len(times)} timestamps; each list needs one "
                                    "value per timestamp (a float_list)")
        columns.append(values)
    return names[0].decode("utf-8", "replace").strip(), times, columns
