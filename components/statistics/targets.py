"""The statistics stage's regression piece: numeric targets described, put in the schema and
checked, the counterpart of the class-label distribution.

The CombineFn keeps every target value of a split (k floats per example: memory in
proportion to the data), so the range, the mean and an exact histogram come from one pass.
The schema holds the targets as a FLOAT feature of k values present in every example; a split
whose target mean is further from train's than `shift_threshold` train standard deviations
gets a warning (the test split would measure another population).
"""

from __future__ import annotations

import numpy as np

FEATURE = "target"


def summarise(values: list, missing: int, names: list[str], bins: int) -> dict:
    """statistics.json's entry of the targets of one split: per target column the count,
    min/max/mean/std and an equal-width histogram; `missing` examples had no target."""
    array = np.asarray(values, dtype=np.float64).reshape(-1, len(names))
    columns = {}
    for index, name in enumerate(names):
        column = array[:, index]
        if not len(column):
            columns[name] = {"count": 0, "min": None, "max": None, "mean": None, "std": None,
                             "histogram": {"edges": [], "counts": []}}
            continue
        low, high = float(column.min()), float(column.max())
        counts, edges = np.histogram(column, bins=bins, range=(low, high if high > low
                                                                else low + 1.0))
        columns[name] = {"count": int(len(column)), "min": low, "max": high,
                         "mean": float(column.mean()), "std": float(column.std()),
                         "histogram": {"edges": edges.tolist(), "counts": counts.tolist()}}
    return {"type": "target", "names": list(names), "missing": int(missing),
            "columns": columns}


def add_to_schema(schema, train: dict, shift_threshold: float) -> None:
    """The targets as a FLOAT feature of k values, required in every example."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    names = train["names"]
    feature = schema.feature.add(name=FEATURE, type=schema_pb2.FLOAT)
    feature.presence.min_fraction = 1.0
    feature.value_count.min = feature.value_count.max = len(names)
    feature.annotation.comment.append(
        f"Regression targets {names}, float32, in the raw data's units. Add a float_domain "
        "{min, max} here to reject values outside it.")
    feature.annotation.tag.append(f"shift_threshold:{shift_threshold:g}")
    schema.string_domain.add(name="target_names", value=names)


def expectations(schema, default_threshold: float) -> dict:
    """What the target checks need from a Schema proto."""
    features = {feature.name: feature for feature in schema.feature}
    expected = {"names": [], "threshold": default_threshold, "low": None, "high": None}
    for domain in schema.string_domain:
        if domain.name == "target_names":
            expected["names"] = list(domain.value)
    feature = features.get(FEATURE)
    if feature is not None:
        for tag in feature.annotation.tag:
            if tag.startswith("shift_threshold:"):
                expected["threshold"] = float(tag.split(":", 1)[1])
        if feature.HasField("float_domain"):
            domain = feature.float_domain
            expected["low"] = domain.min if domain.HasField("min") else None
            expected["high"] = domain.max if domain.HasField("max") else None
    return expected


def anomalies(split: str, stats: dict, train: dict, expected: dict, report) -> None:
    """Missing targets and other target columns are errors; values outside the schema's
    float_domain too; a mean shifted from train's by more than the threshold (in train
    standard deviations) is a warning."""
    if stats["missing"]:
        report(FEATURE, "error", f"{stats['missing']} examples have no target; the schema "
               "requires one in every example")
    if expected["names"] and stats["names"] != expected["names"]:
        report(FEATURE, "error", f"targets {stats['names']}, the schema expects "
               f"{expected['names']}")
        return
    for name, column in stats["columns"].items():
        if not column["count"]:
            continue
        if expected["low"] is not None and column["min"] < expected["low"]:
            report(FEATURE, "error", f"target {name!r} value {column['min']:g} is below the "
                   f"schema's float_domain min {expected['low']:g} (out of range)")
        if expected["high"] is not None and column["max"] > expected["high"]:
            report(FEATURE, "error", f"target {name!r} value {column['max']:g} is above the "
                   f"schema's float_domain max {expected['high']:g} (out of range)")
        reference = train["columns"].get(name, {})
        if split == "train" or not reference.get("count"):
            continue
        shift = abs(column["mean"] - reference["mean"]) / (reference["std"] or 1.0)
        if shift > expected["threshold"] * 10:  # threshold 0.1 -> one train std
            report(FEATURE, "warning", f"target {name!r} mean {column['mean']:.4g} differs "
                   f"from train's {reference['mean']:.4g} by {shift:.2f} train standard "
                   "deviations")


def to_proto(feature, common, stats: dict, present: int, statistics_pb2) -> None:
    """TFDV's numeric statistics of the targets (all columns together) with one histogram
    per column as custom statistics."""
    import json

    columns = [column for column in stats["columns"].values() if column["count"]]
    common.tot_num_values = present * len(stats["names"])
    common.min_num_values = common.max_num_values = len(stats["names"])
    common.avg_num_values = float(len(stats["names"]))
    if not columns:
        return
    numbers = feature.num_stats
    numbers.min = min(column["min"] for column in columns)
    numbers.max = max(column["max"] for column in columns)
    numbers.mean = float(np.mean([column["mean"] for column in columns]))
    numbers.std_dev = float(np.sqrt(np.mean([column["std"] ** 2 for column in columns])))
    first = columns[0]["histogram"]
    histogram = numbers.histograms.add(type=statistics_pb2.Histogram.STANDARD)
    for low, high, count in zip(first["edges"], first["edges"][1:], first["counts"]):
        histogram.buckets.add(low_value=low, high_value=high, sample_count=count)
    feature.custom_stats.add(name="targets", str=json.dumps(stats["columns"]))
