"""Statistics of the boxes of a detection dataset (the `objects` feature, task detection):
boxes per image, and per class the count, box sizes (width and height as fractions of the
image) and aspect ratios (width / height); the schema's class domain and the checks on them.

The Beam CombineFn (combine.py) hands each example's boxes here as (labels, [n, 4] bbox);
sums are histograms with fixed edges, so memory does not grow with the number of boxes.
"""

from __future__ import annotations

import numpy as np

FEATURE = "objects"
SIZE_EDGES = np.linspace(0.0, 1.0, 21)  # box width or height as a fraction of the image
RATIO_EDGES = np.exp(np.linspace(np.log(1 / 8), np.log(8), 25))  # width / height, log-spaced
MAX_COUNT = 100  # the boxes-per-image distribution counts up to this; more go in this bucket


def decode(example) -> tuple[list[int], np.ndarray] | None:
    """(labels, bbox [n, 4]) of a serialized example's features, or None without objects."""
    if "objects/label" not in example and "objects/bbox" not in example:
        return None
    labels = list(example["objects/label"].int64_list.value)
    bbox = np.asarray(example["objects/bbox"].float_list.value, np.float64).reshape(-1, 4)
    return labels, bbox


def create() -> dict:
    return {"per_image": {}, "classes": {}, "outside": 0}


def add(sums: dict, labels: list[int], bbox: np.ndarray) -> None:
    count = str(min(len(labels), MAX_COUNT))
    sums["per_image"][count] = sums["per_image"].get(count, 0) + 1
    sums["outside"] += int(((bbox < 0) | (bbox > 1)).any(axis=1).sum())
    heights, widths = bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1]
    for label, height, width in zip(labels, heights, widths):
        entry = sums["classes"].setdefault(str(label), {
            "count": 0, "width": [0] * (len(SIZE_EDGES) - 1),
            "height": [0] * (len(SIZE_EDGES) - 1), "ratio": [0] * (len(RATIO_EDGES) - 1),
            "zero_area": 0})
        entry["count"] += 1
        if width <= 0 or height <= 0:
            entry["zero_area"] += 1
            continue
        for key, value, edges in (("width", width, SIZE_EDGES), ("height", height, SIZE_EDGES),
                                  ("ratio", width / height, RATIO_EDGES)):
            index = int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0,
                                len(edges) - 2))
            entry[key][index] += 1


def merge(merged: dict, sums: dict) -> None:
    for count, images in sums["per_image"].items():
        merged["per_image"][count] = merged["per_image"].get(count, 0) + images
    merged["outside"] += sums["outside"]
    for label, entry in sums["classes"].items():
        if label not in merged["classes"]:
            merged["classes"][label] = {key: (list(value) if isinstance(value, list) else value)
                                        for key, value in entry.items()}
            continue
        target = merged["classes"][label]
        for key, value in entry.items():
            target[key] = ([a + b for a, b in zip(target[key], value)]
                           if isinstance(value, list) else target[key] + value)


def _mean(counts: list[int], edges: np.ndarray, geometric: bool = False) -> float | None:
    counts = np.asarray(counts, np.float64)
    if not counts.sum():
        return None
    centres = (np.sqrt(edges[:-1] * edges[1:]) if geometric else (edges[:-1] + edges[1:]) / 2)
    return float(centres @ counts / counts.sum())


def summarise(sums: dict, class_names: list[str], missing: int) -> dict:
    per_image = {int(key): value for key, value in sums["per_image"].items()}
    images = sum(per_image.values())
    boxes = sum(count * images for count, images in per_image.items())
    per_class, out_of_domain = {}, {}
    for label, entry in sorted(sums["classes"].items(), key=lambda item: int(item[0])):
        index = int(label)
        if not 0 <= index < len(class_names):
            out_of_domain[label] = entry["count"]
            continue
        per_class[class_names[index]] = {
            "count": entry["count"], "zero_area": entry["zero_area"],
            "mean_width": _mean(entry["width"], SIZE_EDGES),
            "mean_height": _mean(entry["height"], SIZE_EDGES),
            "mean_aspect_ratio": _mean(entry["ratio"], RATIO_EDGES, geometric=True),
            "width_histogram": {"edges": SIZE_EDGES.tolist(), "counts": entry["width"]},
            "height_histogram": {"edges": SIZE_EDGES.tolist(), "counts": entry["height"]},
            "aspect_ratio_histogram": {"edges": RATIO_EDGES.tolist(), "counts": entry["ratio"]},
        }
    return {"type": "objects", "missing": missing, "num_boxes": boxes,
            "boxes_per_image": {"distribution": {str(k): per_image[k] for k in sorted(per_image)},
                                "mean": boxes / images if images else None,
                                "max": max(per_image) if per_image else None,
                                "background_images": per_image.get(0, 0)},
            "distribution": {name: per_class.get(name, {}).get("count", 0)
                             for name in class_names},
            "per_class": per_class, "out_of_domain": out_of_domain,
            "boxes_outside_image": sums["outside"],
            "zero_area_boxes": sum(entry["zero_area"] for entry in per_class.values())}


def add_to_schema(schema, class_names: list[str], threshold: float) -> None:
    """objects/label: class indices 0..K-1 named by 'class_names'; objects/bbox: four
    fractions per box in [0, 1]; any number of boxes (0: a background image)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    label = schema.feature.add(name="objects/label", type=schema_pb2.INT)
    label.int_domain.name, label.int_domain.is_categorical = "label", True
    label.int_domain.min, label.int_domain.max = 0, len(class_names) - 1
    label.value_count.min = 0
    label.annotation.comment.append("The class of each box; names in 'class_names'.")
    label.drift_comparator.infinity_norm.threshold = threshold
    bbox = schema.feature.add(name="objects/bbox", type=schema_pb2.FLOAT)
    bbox.float_domain.min, bbox.float_domain.max = 0.0, 1.0
    bbox.value_count.min = 0
    bbox.annotation.comment.append("(ymin, xmin, ymax, xmax) per box, fractions of the image.")
    schema.string_domain.add(name="class_names", value=class_names)


def anomalies(split: str, stats: dict, train: dict, class_names: list[str], expected: dict,
              report) -> None:
    """Labels outside the classes, boxes outside the image or of no area are errors; a class
    distribution of the boxes further from train's than the threshold is a warning."""
    known = expected["class_names"] or class_names
    if stats["out_of_domain"]:
        report(FEATURE, "error", f"box labels outside 0..{len(class_names) - 1}: "
               f"{stats['out_of_domain']} (label: count)")
    unknown = [name for name, count in stats["distribution"].items()
               if count and name not in known]
    if unknown:
        report(FEATURE, "error", f"box labels {unknown} are not in the schema's class names "
               f"{known}")
    for key, what in (("boxes_outside_image", "outside the image"),
                      ("zero_area_boxes", "of zero area")):
        if stats[key]:
            report(FEATURE, "error", f"{stats[key]} boxes {what}; ingest quarantines them, so "
                   "these examples were not written by it")
    if split != "train":
        total = max(sum(stats["distribution"].values()), 1)
        reference = train["distribution"]
        reference_total = max(sum(reference.values()), 1)
        distance, name = max(((abs(stats["distribution"].get(key, 0) / total
                                   - reference.get(key, 0) / reference_total), key)
                              for key in set(stats["distribution"]) | set(reference)),
                             default=(0.0, ""))
        if distance > expected["threshold"]:
            report(FEATURE, "warning", f"box class distribution differs from train's by "
                   f"{distance:.3f} (L-infinity, class {name!r}), more than "
                   f"{expected['threshold']}")


def to_proto(feature, common, stats: dict, present: int, statistics_pb2) -> None:
    import json

    common.tot_num_values = stats["num_boxes"]
    common.avg_num_values = stats["boxes_per_image"]["mean"] or 0.0
    rank = feature.custom_stats.add(name="label_distribution").rank_histogram
    for index, (label, count) in enumerate(stats["distribution"].items()):
        rank.buckets.add(low_rank=index, high_rank=index, label=label, sample_count=count)
    feature.custom_stats.add(name="boxes_per_image", str=json.dumps(stats["boxes_per_image"]))
    feature.custom_stats.add(name="per_class", str=json.dumps(
        {name: {key: value for key, value in entry.items() if not key.endswith("histogram")}
         for name, entry in stats["per_class"].items()}))
