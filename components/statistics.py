"""Statistics: per-split statistics of an Examples dataset, its schema, and anomalies (Beam).

Each split's TFRecord shards are read with Beam, decoded with the dataset's own TFDS
features, and summarised by one CombineFn. Pixel statistics are exact: the combiner keeps a
count per pixel value (0..255), from which min, max, mean, std and the histogram follow.

Outputs follow TFDV's formats (tensorflow_metadata DatasetFeatureStatisticsList and Schema)
so TFDV and Facets can read them, plus readable JSON. Image statistics describe the decoded
pixel values, not the PNG bytes. Anomalies: a label outside the schema's domain, an image
shape or missing values that differ from the schema are errors (the runner halts before
training); a label distribution that moved away from train's is a warning.

TensorFlow, TFDS and Beam are imported inside functions so a cached pipeline does not pay
for importing them.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
import pydantic

from components import examples_io
from components.beam_pipeline import create_pipeline
from pipeline.stage import StageConfig

NAME = "statistics"
VERSION = 1
INPUTS = {"examples": "Examples"}
OUTPUTS = {"statistics": "Statistics", "schema": "Schema"}
CODE = ("components.examples_io",)


class Config(StageConfig):
    histogram_bins: int = pydantic.Field(
        10, ge=1, le=256, description="Equal-width bins of the pixel histogram over 0..255."
    )
    label_shift_threshold: float = pydantic.Field(
        0.1, ge=0.0, le=1.0,
        description="Max L-infinity distance between train's and another split's normalised "
        "label distribution before a warning.",
    )


# ---------------------------------------------------------------- Beam part


_FEATURES_CACHE: dict = {}


def _decode(serialized: bytes, examples_dir: str) -> tuple[np.ndarray | None, int | None]:
    """(decoded image, label) of one serialized example; None where a value is missing."""
    import tensorflow as tf

    if examples_dir not in _FEATURES_CACHE:  # once per worker process
        _FEATURES_CACHE[examples_dir] = examples_io.features(examples_dir)
    features = _FEATURES_CACHE[examples_dir]
    example = tf.train.Example.FromString(serialized).features.feature
    encoded = example["image"].bytes_list.value if "image" in example else []
    labels = example["label"].int64_list.value if "label" in example else []
    image = features["image"].decode_example_np(encoded[0]) if encoded and encoded[0] else None
    return image, (int(labels[0]) if labels else None)


class SplitStatistics:
    """The CombineFn methods over (image, label) pairs; see SplitStatisticsFn below."""

    @staticmethod
    def create_accumulator():
        return {"count": 0, "image_missing": 0, "label_missing": 0,
                "pixel_counts": np.zeros(256, dtype=np.int64), "labels": {}, "shapes": {}}

    @staticmethod
    def add_input(accumulator, element):
        image, label = element
        accumulator["count"] += 1
        if image is None:
            accumulator["image_missing"] += 1
        else:
            accumulator["pixel_counts"] += np.bincount(image.ravel(), minlength=256)
            shape = "x".join(map(str, image.shape))
            accumulator["shapes"][shape] = accumulator["shapes"].get(shape, 0) + 1
        if label is None:
            accumulator["label_missing"] += 1
        else:
            accumulator["labels"][label] = accumulator["labels"].get(label, 0) + 1
        return accumulator

    @classmethod
    def merge_accumulators(cls, accumulators):
        merged = cls.create_accumulator()
        for accumulator in accumulators:
            for key in ("count", "image_missing", "label_missing", "pixel_counts"):
                merged[key] += accumulator[key]
            for key in ("labels", "shapes"):
                for value, count in accumulator[key].items():
                    merged[key][value] = merged[key].get(value, 0) + count
        return merged

    @staticmethod
    def extract_output(accumulator):
        return {**accumulator, "pixel_counts": accumulator["pixel_counts"].tolist()}


def __getattr__(name: str):
    """SplitStatisticsFn = SplitStatistics as a beam.CombineFn, made when first used (Beam is
    imported lazily); stored as a module global so workers unpickle it by reference."""
    if name != "SplitStatisticsFn":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in globals():
        return globals()[name]
    import apache_beam as beam

    combine_fn = type(name, (SplitStatistics, beam.CombineFn), {"__module__": __name__})
    globals()[name] = combine_fn
    return combine_fn


def ComputeSplitStatistics(examples_dir: str):
    """Serialized TFDS examples -> one dict of raw sums (see SplitStatistics)."""
    import apache_beam as beam

    @beam.ptransform_fn
    def compute_split_statistics(serialized):
        return (
            serialized
            | "Decode" >> beam.Map(_decode, examples_dir)
            | "Combine" >> beam.CombineGlobally(__getattr__("SplitStatisticsFn")())
        )

    return compute_split_statistics()


# ---------------------------------------------------------------- summaries, schema, anomalies


def summarise(sums: dict, class_names: list[str], bins: int) -> dict:
    """The readable statistics of one split (the statistics.json entry) from raw sums."""
    values = np.arange(256)
    counts = np.asarray(sums["pixel_counts"], dtype=np.int64)
    total = int(counts.sum())
    present = np.flatnonzero(counts)
    mean = float(values @ counts / total) if total else 0.0
    variance = float(((values - mean) ** 2) @ counts / total) if total else 0.0
    edges = np.linspace(0.0, 255.0, bins + 1)
    histogram, _ = np.histogram(values, bins=edges, weights=counts)
    shapes = sorted(sums["shapes"], key=sums["shapes"].get, reverse=True)
    distribution = {name: 0 for name in class_names}
    for label, count in sorted(sums["labels"].items()):
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        distribution[name] = distribution.get(name, 0) + count
    return {
        "num_examples": sums["count"],
        "features": {
            "image": {
                "type": "image",
                "shape": [int(dim) for dim in shapes[0].split("x")] if shapes else [],
                "shapes": {shape: sums["shapes"][shape] for shape in shapes},
                "min": int(present[0]) if total else None,
                "max": int(present[-1]) if total else None,
                "mean": mean,
                "std": variance ** 0.5,
                "zeros": int(counts[0]),
                "num_values": total,
                "missing": sums["image_missing"],
                "histogram": {"edges": edges.tolist(), "counts": histogram.astype(int).tolist()},
            },
            "label": {
                "type": "label",
                "missing": sums["label_missing"],
                "distribution": distribution,
                "out_of_domain": {str(label): count for label, count in sums["labels"].items()
                                  if not 0 <= label < len(class_names)},
            },
        },
    }


def to_proto(summaries: dict):
    """DatasetFeatureStatisticsList with one DatasetFeatureStatistics per split."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    result = statistics_pb2.DatasetFeatureStatisticsList()
    for split, summary in summaries.items():
        dataset = result.datasets.add(name=split, num_examples=summary["num_examples"])
        image, label = summary["features"]["image"], summary["features"]["label"]
        present = summary["num_examples"] - image["missing"]
        feature = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
        feature.path.step.append("image")
        stats = feature.num_stats
        stats.common_stats.num_non_missing = present
        stats.common_stats.num_missing = image["missing"]
        stats.common_stats.tot_num_values = image["num_values"]
        per_example = image["num_values"] / present if present else 0
        stats.common_stats.min_num_values = stats.common_stats.max_num_values = int(per_example)
        stats.common_stats.avg_num_values = per_example
        stats.mean, stats.std_dev, stats.num_zeros = image["mean"], image["std"], image["zeros"]
        stats.min, stats.max = image["min"] or 0, image["max"] or 0
        histogram = stats.histograms.add(type=statistics_pb2.Histogram.STANDARD)
        edges = image["histogram"]["edges"]
        for low, high, count in zip(edges, edges[1:], image["histogram"]["counts"]):
            histogram.buckets.add(low_value=low, high_value=high, sample_count=count)
        feature.custom_stats.add(name="shape", str=json.dumps(image["shape"]))

        feature = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
        feature.path.step.append("label")
        labelled = sum(label["distribution"].values())
        feature.num_stats.common_stats.num_non_missing = labelled
        feature.num_stats.common_stats.num_missing = label["missing"]
        rank = feature.custom_stats.add(name="label_distribution").rank_histogram
        for index, (name, count) in enumerate(label["distribution"].items()):
            rank.buckets.add(low_rank=index, high_rank=index, label=name, sample_count=count)
    return result


def infer_schema(train: dict, class_names: list[str]):
    """Schema from train: a PNG image of train's shape and a categorical label 0..K-1."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for name in ("id", "image"):
        feature = schema.feature.add(name=name, type=schema_pb2.BYTES)
        feature.presence.min_fraction = 1.0
        feature.value_count.min = feature.value_count.max = 1
    schema.feature[0].annotation.comment.append("Stable record id '<source file>:<index>'.")
    image = schema.feature[1]
    image.image_domain.SetInParent()
    image.annotation.comment.append(
        f"PNG-encoded uint8 image, decoded shape {train['image']['shape']}.")
    image.annotation.tag.append("shape:" + ",".join(map(str, train["image"]["shape"])))
    label = schema.feature.add(name="label", type=schema_pb2.INT)
    label.presence.min_fraction = 1.0
    label.value_count.min = label.value_count.max = 1
    label.int_domain.name, label.int_domain.is_categorical = "label", True
    label.int_domain.min, label.int_domain.max = 0, len(class_names) - 1
    label.annotation.comment.append("Class index; names in the string domain 'class_names'.")
    schema.string_domain.add(name="class_names", value=class_names)
    return schema


def find_anomalies(summaries: dict, class_names: list[str], threshold: float) -> list[dict]:
    """Anomalies of each split against the schema (train's shape, the label domain)."""
    anomalies = []
    train = summaries["train"]["features"]
    train_total = max(sum(train["label"]["distribution"].values()), 1)
    for split, summary in summaries.items():
        image, label = summary["features"]["image"], summary["features"]["label"]

        def report(feature, severity, description):
            anomalies.append({"split": split, "feature": feature, "severity": severity,
                              "description": description})

        if summary["num_examples"] == 0:
            report("*", "warning", "the split is empty")
            continue
        for feature, stats in (("image", image), ("label", label)):
            if stats["missing"]:
                report(feature, "error", f"{stats['missing']} of {summary['num_examples']} "
                       "examples have no value; the schema requires one in every example")
        other_shapes = {shape: count for shape, count in image["shapes"].items()
                        if shape != "x".join(map(str, train["image"]["shape"]))}
        if other_shapes:
            report("image", "error", f"image shapes {other_shapes} (shape: count) differ from "
                   f"the schema's {train['image']['shape']}")
        if label["out_of_domain"]:
            report("label", "error", f"labels outside the domain 0..{len(class_names) - 1}: "
                   f"{label['out_of_domain']} (label: count)")
        if split != "train":
            total = max(sum(label["distribution"].values()), 1)
            distance, worst = max(
                (abs(label["distribution"].get(name, 0) / total
                     - train["label"]["distribution"].get(name, 0) / train_total), name)
                for name in set(label["distribution"]) | set(train["label"]["distribution"])
            )
            if distance > threshold:
                report("label", "warning", f"label distribution differs from train's by "
                       f"{distance:.3f} (L-infinity, class {worst!r}), more than "
                       f"label_shift_threshold={threshold}")
    return anomalies


# ---------------------------------------------------------------- the stage


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    import apache_beam as beam
    from google.protobuf import text_format

    examples_dir = str(inputs["examples"].path)
    class_names = examples_io.class_names(examples_dir)
    splits = examples_io.split_names(examples_dir)
    sums_dir = pathlib.Path(context.scratch_dir) / "sums"
    context.log.info("statistics: reading splits %s of %s", splits, examples_dir)

    with create_pipeline(context.runtime) as pipeline:
        for split in splits:
            _ = (
                pipeline
                | f"Read{split.title()}" >> beam.io.ReadFromTFRecord(
                    f"{examples_dir}/*-{split}.tfrecord-*-of-*")
                | f"Statistics{split.title()}" >> ComputeSplitStatistics(examples_dir)
                | f"ToJson{split.title()}" >> beam.Map(json.dumps)
                | f"Write{split.title()}" >> beam.io.WriteToText(
                    str(sums_dir / split), file_name_suffix=".json", shard_name_template="")
            )

    summaries = {}
    for split in splits:
        sums = json.loads((sums_dir / f"{split}.json").read_text())
        sums["labels"] = {int(label): count for label, count in sums["labels"].items()}
        summaries[split] = summarise(sums, class_names, config.histogram_bins)
    if "train" not in summaries or summaries["train"]["num_examples"] == 0:
        raise ValueError(f"{examples_dir} has no training examples: the schema is inferred "
                         "from the train split; check the ingest stage's inputs.")
    anomalies = find_anomalies(summaries, class_names, config.label_shift_threshold)

    statistics_dir = pathlib.Path(outputs["statistics"])
    schema_dir = pathlib.Path(outputs["schema"])
    (statistics_dir / "statistics.pb").write_bytes(to_proto(summaries).SerializeToString())
    (statistics_dir / "statistics.json").write_text(
        json.dumps({"splits": summaries}, indent=2) + "\n")
    (statistics_dir / "anomalies.json").write_text(
        json.dumps({"anomalies": anomalies}, indent=2) + "\n")
    schema = infer_schema(summaries["train"]["features"], class_names)
    (schema_dir / "schema.pbtxt").write_text(text_format.MessageToString(schema))

    errors = [anomaly for anomaly in anomalies if anomaly["severity"] == "error"]
    for anomaly in anomalies:
        context.log.warning("statistics: %(severity)s in %(split)s/%(feature)s: "
                            "%(description)s", anomaly)
    properties: dict[str, Any] = {
        "num_examples": {split: summary["num_examples"] for split, summary in summaries.items()},
        "anomalies": {"errors": len(errors), "warnings": len(anomalies) - len(errors)},
    }
    if errors:
        properties["halt"] = "\n".join(
            [f"statistics found {len(errors)} error anomalies in {examples_dir}:"]
            + [f"- {a['split']}/{a['feature']}: {a['description']}" for a in errors]
            + ["See anomalies.json in the statistics artifact; fix the data and re-run ingest."]
        )
    return properties
