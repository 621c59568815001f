"""Summaries of the statistics stage: the readable per-split statistics and their TFDV proto.

`summarise` turns the raw sums of one split (the output of the Beam CombineFn in
combine.py) into its statistics.json entry: pixel value and image size
distributions, per-channel moments and lengths of sequences, lengths of texts, and the label
distribution. `to_proto` builds the tensorflow_metadata DatasetFeatureStatisticsList (TFDV's
format, so TFDV and Facets can read it) from those summaries.

Kept apart from stage.py and combine.py (stage contract, Beam computation) because it is pure
numpy on finished sums: it needs neither Beam nor the artifacts. tensorflow_metadata is imported inside
`to_proto`, like TensorFlow elsewhere, so a cached pipeline does not pay for importing it.
"""

from __future__ import annotations

import json

import numpy as np

from edgepipe.components.statistics import audio, objects, targets


def _histogram(values, counts, bins: int, low: float, high: float) -> dict:
    edges = np.linspace(low, high, bins + 1)
    histogram, _ = np.histogram(values, bins=edges, weights=counts)
    return {"edges": edges.tolist(), "counts": histogram.astype(int).tolist()}


def summarise_lengths(sizes: dict, bins: int) -> dict:
    """min/max/mean, histogram and exact distribution of per-example lengths."""
    if not sizes:
        return {"min": None, "max": None, "mean": None, "histogram": {"edges": [], "counts": []},
                "distribution": {}}
    lengths = np.array(sorted(sizes), dtype=np.int64)
    counts = np.array([sizes[length] for length in lengths])
    low, high = int(lengths[0]), int(lengths[-1])
    return {"min": low, "max": high, "mean": float(lengths @ counts / counts.sum()),
            "histogram": _histogram(lengths, counts, min(bins, high - low + 1), low, high),
            "distribution": {str(length): int(count) for length, count in zip(lengths, counts)}}


def _summarise_image(sums: dict, bins: int) -> dict:
    values = np.arange(256)
    counts = np.asarray(sums["pixel_counts"], dtype=np.int64)
    total = int(counts.sum())
    present = np.flatnonzero(counts)
    mean = float(values @ counts / total) if total else 0.0
    variance = float(((values - mean) ** 2) @ counts / total) if total else 0.0
    shapes = sorted(sums["sizes"], key=sums["sizes"].get, reverse=True)
    return {
        "type": "image",
        "shape": [int(dim) for dim in shapes[0].split("x")] if shapes else [],
        "shapes": {shape: sums["sizes"][shape] for shape in shapes},  # size distribution
        "min": int(present[0]) if total else None,
        "max": int(present[-1]) if total else None,
        "mean": mean, "std": variance ** 0.5, "zeros": int(counts[0]), "num_values": total,
        "missing": sums["value_missing"],
        "histogram": _histogram(values, counts, bins, 0.0, 255.0),
    }


def _summarise_sequence(sums: dict, bins: int, channels: int) -> dict:
    steps = sums["steps"]
    return {
        "type": "sequence", "channels": channels,
        "length": summarise_lengths({int(k): v for k, v in sums["sizes"].items()}, bins),
        "mean": [float(v) for v in sums["mean"]] if steps else [],
        "std": [float(np.sqrt(v / steps)) for v in sums["m2"]] if steps else [],
        "min": [float(v) for v in sums["min"]] if steps else [],
        "max": [float(v) for v in sums["max"]] if steps else [],
        "num_steps": steps, "missing": sums["value_missing"],
    }


def _summarise_text(sums: dict, bins: int) -> dict:
    present = sums["count"] - sums["value_missing"]
    return {"type": "text", "length_unit": "characters",
            "length": summarise_lengths({int(k): v for k, v in sums["sizes"].items()}, bins),
            "mean_words": sums["words"] / present if present else None,
            "missing": sums["value_missing"]}


def summarise(sums: dict, class_names: list[str], bins: int, feature: str = "image",
              channels: int = 0, target_names: list[str] = (), sample_rate: int = 0) -> dict:
    """The readable statistics of one split (the statistics.json entry) from raw sums; with
    `target_names` (regression) the targets are described instead of a label distribution."""
    labels = {int(label): count for label, count in sums["labels"].items()}
    distribution = {name: 0 for name in class_names}
    for label, count in sorted(labels.items()):
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        distribution[name] = distribution.get(name, 0) + count
    value = {"image": lambda: _summarise_image(sums, bins),
             "sequence": lambda: _summarise_sequence(sums, bins, channels),
             "text": lambda: _summarise_text(sums, bins),
             "audio": lambda: audio.summarise(sums, class_names, sample_rate)}[feature]()
    if sums.get("objects", {}).get("per_image"):  # detection: the boxes, not one label
        return {"num_examples": sums["count"], "features": {
            feature: value,
            objects.FEATURE: objects.summarise(sums["objects"], class_names,
                                               sums["label_missing"])}}
    if target_names:
        return {"num_examples": sums["count"], "features": {
            feature: value,
            targets.FEATURE: targets.summarise(sums.get("targets", []), sums["label_missing"],
                                               list(target_names), bins)}}
    return {
        "num_examples": sums["count"],
        "features": {
            feature: value,
            "label": {
                "type": "label", "missing": sums["label_missing"],
                "distribution": distribution,
                "out_of_domain": {str(label): count for label, count in labels.items()
                                  if not 0 <= label < len(class_names)},
            },
        },
    }


def _add_histogram(histogram, edges, counts, kind):
    histogram.type = kind
    for low, high, count in zip(edges, edges[1:], counts):
        histogram.buckets.add(low_value=low, high_value=high, sample_count=count)


def to_proto(summaries: dict):
    """DatasetFeatureStatisticsList with one DatasetFeatureStatistics per split."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    Stats = statistics_pb2.FeatureNameStatistics
    kinds = {"image": Stats.INT, "sequence": Stats.FLOAT, "text": Stats.STRING,
             "audio": Stats.FLOAT,
             "label": Stats.INT, "target": Stats.FLOAT, "objects": Stats.STRUCT}
    fillers = {"image": _image_proto, "sequence": _sequence_proto, "text": _text_proto,
               "audio": audio.to_proto,
               "label": _label_proto, "target": targets.to_proto, "objects": objects.to_proto}
    result = statistics_pb2.DatasetFeatureStatisticsList()
    for split, summary in summaries.items():
        dataset = result.datasets.add(name=split, num_examples=summary["num_examples"])
        # Every example has an id (ingest sets it), so its statistics are its count.
        ident = dataset.features.add(type=Stats.STRING)
        ident.path.step.append("id")
        ident.string_stats.common_stats.num_non_missing = summary["num_examples"]
        ident.string_stats.common_stats.min_num_values = 1
        ident.string_stats.common_stats.max_num_values = 1
        for name, stats in summary["features"].items():
            present = summary["num_examples"] - stats["missing"]
            feature = dataset.features.add(type=kinds[stats["type"]])
            feature.path.step.append(name)
            common = (feature.string_stats.common_stats if stats["type"] == "text"
                      else feature.num_stats.common_stats)
            common.num_non_missing, common.num_missing = present, stats["missing"]
            fillers[stats["type"]](feature, common, stats, present, statistics_pb2)
    return result


def _text_proto(feature, common, stats: dict, present: int, statistics_pb2) -> None:
    feature.string_stats.avg_length = stats["length"]["mean"] or 0.0
    if "tokens" in stats:
        feature.custom_stats.add(name="token_length", str=json.dumps(stats["tokens"]))


def _image_proto(feature, common, stats: dict, present: int, statistics_pb2) -> None:
    per_example = stats["num_values"] / present if present else 0
    common.tot_num_values = stats["num_values"]
    common.min_num_values = common.max_num_values = int(per_example)
    common.avg_num_values = per_example
    numbers = feature.num_stats
    numbers.mean, numbers.std_dev, numbers.num_zeros = (
        stats["mean"], stats["std"], stats["zeros"])
    numbers.min, numbers.max = stats["min"] or 0, stats["max"] or 0
    _add_histogram(numbers.histograms.add(), stats["histogram"]["edges"],
                   stats["histogram"]["counts"], statistics_pb2.Histogram.STANDARD)
    feature.custom_stats.add(name="shape", str=json.dumps(stats["shape"]))
    feature.custom_stats.add(name="shapes", str=json.dumps(stats["shapes"]))


def _sequence_proto(feature, common, stats: dict, present: int, statistics_pb2) -> None:
    if not stats["num_steps"]:
        return
    channels, steps = stats["channels"], stats["num_steps"]
    common.tot_num_values = steps * channels
    common.min_num_values = stats["length"]["min"] * channels
    common.max_num_values = stats["length"]["max"] * channels
    common.avg_num_values = steps * channels / present
    _add_histogram(common.num_values_histogram,
                   [edge * channels for edge in stats["length"]["histogram"]["edges"]],
                   stats["length"]["histogram"]["counts"], statistics_pb2.Histogram.STANDARD)
    means, stds = np.array(stats["mean"]), np.array(stats["std"])
    overall = float(means.mean())
    numbers = feature.num_stats
    numbers.mean = overall
    numbers.std_dev = float(np.sqrt(np.mean(stds**2 + (means - overall) ** 2)))
    numbers.min, numbers.max = min(stats["min"]), max(stats["max"])
    for key in ("mean", "std", "min", "max", "length"):
        feature.custom_stats.add(name=f"per_channel_{key}" if key != "length" else "length",
                                 str=json.dumps(stats[key]))


def _label_proto(feature, common, stats: dict, present: int, statistics_pb2) -> None:
    rank = feature.custom_stats.add(name="label_distribution").rank_histogram
    for index, (label, count) in enumerate(stats["distribution"].items()):
        rank.buckets.add(low_rank=index, high_rank=index, label=label, sample_count=count)
    common.num_non_missing = sum(stats["distribution"].values())
