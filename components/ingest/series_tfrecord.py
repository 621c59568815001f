"""The rows of a forecasting tfrecord source: one tf.train.Example per series.

`[ingest] source = "tfrecord"`, `train` a glob of TFRecord files (`.gz`: GZIP). Each record
holds `series_column` (bytes, default "series_id"), `time_column` (an int64 or a bytes list,
default "timestamp"), `target_column` (a float list, default "value") and one float list per
name in `covariate_columns`, every list as long as the timestamps. A record becomes the same
rows as a CSV series (series_rows.py): (series, (location "path:record:step", time text,
[value text, covariate texts...])), so the per-series checks and repairs are the same. A
record that cannot be used (it does not parse, lacks a feature, its lists differ in length,
its CRC is wrong, the file is cut) is a rejection of its own with the reason, never dropped.

Ingest never imports TensorFlow: the frames are read here with their CRCs checked (crcmod,
which Beam's tfrecord extra installs) and the Example is parsed with TFDS's TF-free copy of
the proto (tensorflow_datasets.proto, which TFDS's NumPy parser in check_readable uses).
"""

from __future__ import annotations

import functools
import gzip
import struct

from edgepipe.components.ingest.sources.common import read_bytes

HEADER, FOOTER = 12, 4  # uint64 length + uint32 masked CRC of it; uint32 masked CRC of data


@functools.lru_cache(maxsize=1)
def _crc32c():
    import crcmod.predefined

    return crcmod.predefined.mkPredefinedCrcFun("crc-32c")


def _masked_crc(data: bytes) -> int:
    value = _crc32c()(data)
    return (((value >> 15) | (value << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frames(data: bytes):
    """(index, record bytes) of each record of TFRecord bytes, or (index, (reason, detail))
    for a record whose data fails its CRC (reading goes on) and, last, for a cut or corrupt
    rest of the file (reading stops: where the next record starts is unknown)."""
    offset, index = 0, 0
    while offset < len(data):
        header = data[offset:offset + HEADER]
        if len(header) < HEADER:
            yield index, ("truncated_record", f"the file ends inside a record header at byte "
                          f"{offset}; the rest of the file cannot be read")
            return
        (length,), (crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
        if _masked_crc(header[:8]) != crc:
            yield index, ("truncated_record", f"the length of the record at byte {offset} "
                          "fails its CRC; the rest of the file cannot be read")
            return
        end = offset + HEADER + length
        body, footer = data[offset + HEADER:end], data[end:end + FOOTER]
        if len(body) < length or len(footer) < FOOTER:
            yield index, ("truncated_record", f"the file ends inside the record at byte "
                          f"{offset} (a cut copy?)")
            return
        if _masked_crc(body) != struct.unpack("<I", footer)[0]:
            yield index, ("corrupt_record", f"the data of the record at byte {offset} fails "
                          "its CRC")
        else:
            yield index, body
        offset, index = end + FOOTER, index + 1


def _rejection(location: str, reason: str, detail: str) -> dict:
    return {"source": location, "id": location, "split": "all", "level": "record",
            "reason": reason, "detail": detail}


def read_rows(path: str, config, layout: dict):
    """Tagged elements, as series_rows.read_rows: ("row", (series, (location, time,
    [texts]))) per step of each usable record, ("rejected", JSON fields) per unusable one."""
    from google.protobuf.message import DecodeError
    from tensorflow_datasets.proto import tf_example_pb2

    data = read_bytes(path)
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            yield "rejected", _rejection(f"{path}:0", "truncated_record",
                                         f"the GZIP file cannot be read: {error}")
            return
    for index, record in frames(data):
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
        parsed = _series(feature, config, layout["target"])
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
