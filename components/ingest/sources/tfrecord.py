"""`tfrecord`: existing tf.train.Example TFRecord files with a given feature spec.

`train`/`test` are file globs (a `.gz` file is read as GZIP). `feature_key` names the input
feature and `feature_kind` says what it holds: "image" (encoded PNG/JPEG bytes), "sequence"
(a float list of steps x `channels`) or "text" (bytes). `label_key` holds an int64 class
index or a bytes class name; for regression, `target_column` names the float (or int64)
feature(s) holding the numeric target(s). The id is the `id_key` value or "<file name>:<index>".

A record that does not parse or lacks a key is quarantined. A file that ends in a truncated
or corrupt record (a cut download, a bad CRC) cannot be read past that point: its readable
records are kept and the unreadable rest counts as one quarantined record, reason
"truncated_record", located at the index where reading stopped.
"""

from __future__ import annotations

import pathlib

import numpy as np

from edgepipe.components.ingest import tfrecord_frames
from edgepipe.components.ingest.sources import image_dir
from edgepipe.components.ingest.sources.common import match, parse_targets, rejection

KIND = "tfrecord"
FIELDS = ("train", "test", "unlabeled", "feature_key", "feature_kind", "channels", "label_key",
          "target_column", "id_key",
          # task "forecasting": a tf.train.Example per series (ingest/series_tfrecord.py)
          "series_column", "time_column", "covariate_columns", "frequency", "fill")
REQUIRED = ("train", "feature_key", "feature_kind")  # task "forecasting": train only
CHUNK_RECORDS = 2000


def files(config) -> dict[str, list[str]]:
    found = {}
    for origin, pattern in (("train" if config.test else "all", config.train),
                            ("test", config.test), ("unlabeled", config.unlabeled)):
        if pattern:
            found[origin] = match(pattern)
            if not found[origin]:
                key = {"all": "train"}.get(origin, origin)
                raise FileNotFoundError(f"{pattern}: no file matches; point [ingest] {key} at "
                                        "TFRecord files (a glob like data/train-*.tfrecord).")
    return found


def describe(config) -> dict:
    targets = list(config.target_columns)
    if not config.class_names and not targets:
        raise ValueError("[ingest] class_names: the tfrecord source needs the class names in "
                         "label-index order (and for bytes labels, the names they hold).")
    if config.feature_kind == "sequence" and not config.channels:
        raise ValueError("[ingest] channels: a 'sequence' feature_kind needs the number of "
                         "channels to reshape the float list into steps x channels.")
    info = {"feature": config.feature_kind, "class_names": list(config.class_names),
            "target_names": targets,
            "feature_key": config.feature_key, "label_key": config.label_key,
            "id_key": config.id_key, "channels": config.channels}
    if config.feature_kind == "image":
        info["shape"] = list(_first_image_shape(files(config), config.feature_key))
    return info


def _first_image_shape(found: dict, key: str) -> tuple[int, int, int]:
    """Shape of the first decodable image: every example must have it."""
    from tensorflow_datasets.proto import tf_example_pb2 as example_pb2

    for paths in found.values():
        for path in paths:
            for _, records in _records(path):
                for serialized in records if isinstance(records, list) else []:
                    try:
                        feature = example_pb2.Example.FromString(serialized).features.feature
                        return image_dir.probe_shape(feature[key].bytes_list.value[0])
                    except Exception:  # noqa: BLE001  a broken record: try the next one
                        continue
    raise ValueError(f"no decodable image in {sorted(found.values())}: check feature_key.")


def _records(path: str):
    """(start index, list of serialized records) chunks; a final (index, str message) if the
    file ends in a truncated or corrupt record (read without TensorFlow: ingest/tfrecord_frames)."""
    chunk, start = [], 0
    with tfrecord_frames.opened(path) as stream:
        for index, record in tfrecord_frames.frames(stream):
            if isinstance(record, tuple):  # reading stops at the first unreadable record
                if chunk:
                    yield start, chunk
                yield index, f"{record[0]}: {record[1]}"
                return
            chunk.append(record)
            if len(chunk) == CHUNK_RECORDS:
                yield start, chunk
                start, chunk = start + len(chunk), []
    if chunk:
        yield start, chunk


def read_units(config, origin: str) -> list:
    return [(origin, path) for path in files(config)[origin]]


def read_unit(unit, config, info):
    origin, path = unit
    for start, records in _records(path):
        yield origin, path, start, records


def parse(serialized: bytes, record_id: str, source: str, origin: str, info: dict) -> dict:
    """One serialized tf.train.Example -> a record, or a rejection naming the problem."""
    from google.protobuf.message import DecodeError
    from tensorflow_datasets.proto import tf_example_pb2 as example_pb2

    try:
        feature = example_pb2.Example.FromString(serialized).features.feature
    except DecodeError as error:
        return rejection(record_id, source, origin, "unparseable_record", str(error))
    if info["id_key"] and feature[info["id_key"]].bytes_list.value:
        record_id = feature[info["id_key"]].bytes_list.value[0].decode("utf-8", "replace")
    key, kind = info["feature_key"], info["feature"]
    if key not in feature:
        return rejection(record_id, source, origin, "missing_feature",
                         f"no feature {key!r}; the record has {sorted(feature)}")
    record = {"id": record_id, "source": source, "origin": origin, "label": None}
    label = feature[info["label_key"]] if info["label_key"] in feature else None
    if origin == "unlabeled":
        label = None  # whatever the file holds there is not used
    if info.get("target_names"):  # tfds reuses this parser without targets
        if origin != "unlabeled":
            record["target"], rejected = parse_targets(
                [_one_number(feature, name) for name in info["target_names"]],
                info["target_names"], record_id, source, origin)
            if rejected:
                return rejected
    elif label is not None and label.int64_list.value:
        record["label"] = int(label.int64_list.value[0])
    elif label is not None and label.bytes_list.value:
        name = label.bytes_list.value[0].decode("utf-8", "replace")
        if name not in info["class_names"]:
            return rejection(record_id, source, origin, "unknown_label",
                             f"label {name!r} is not one of {info['class_names']}")
        record["label"] = info["class_names"].index(name)
    if kind == "image":
        encoded = feature[key].bytes_list.value
        image, reason, detail = image_dir.decode(encoded[0] if encoded else b"",
                                                 info["shape"], False)
        if image is None:
            return rejection(record_id, source, origin, reason, detail)
        record["image"] = image
    elif kind == "sequence":
        values = np.asarray(feature[key].float_list.value, dtype=np.float32)
        if values.size % info["channels"]:
            return rejection(record_id, source, origin, "wrong_shape",
                             f"{values.size} values do not split into {info['channels']} "
                             "channels")
        record["sequence"] = values.reshape(-1, info["channels"])
    else:
        encoded = feature[key].bytes_list.value
        record["text"] = encoded[0].decode("utf-8", "replace") if encoded else ""
    return record


def _one_number(feature, name: str):
    """The first float or int64 value of a feature, or None when it is absent or empty."""
    if name not in feature:
        return None
    values = list(feature[name].float_list.value) or list(feature[name].int64_list.value)
    return values[0] if values else None


def expand(chunk, info):
    origin, path, start, records = chunk
    name = pathlib.PurePosixPath(path).name
    if isinstance(records, str):  # the unreadable rest of a file
        yield rejection(f"{name}:{start}", f"{path}:{start}", origin, "truncated_record",
                        f"the file cannot be read past record {start}: {records}")
        return
    for offset, serialized in enumerate(records):
        index = start + offset
        yield parse(serialized, f"{name}:{index}", f"{path}:{index}", origin, info)
