"""The evaluate stage's piece for centroid detection (task detection with `[train] model =
"fomo"`, edgepipe.contracts.tasks.CENTROIDS): centroid precision, recall and F1 over the test
split and per class (edgepipe.contracts.centroids: a predicted centroid is right within one
grid cell of a true box centre of its class), one row per predicted centroid, and the
galleries' picks: the images with the most missed objects and the most confident false
centroids. mAP is not defined for centroids (no extent), so none is reported."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.contracts import artifacts, centroids

# The gates of the other kind of detector: set with a centroid model they would never apply.
BOX_GATES = ("min_map_50", "max_map_50_drop")
CENTROID_GATES = ("min_centroid_f1", "max_centroid_f1_drop")


def refuse_gates(config, keys: tuple[str, ...], model: str, instead: tuple[str, ...]) -> None:
    """[evaluate] gates of the other detector kind set in the config: ValueError saying which
    keys this model's gates are."""
    wrong = [key for key in keys if key in config.model_fields_set]
    if wrong:
        raise ValueError(
            f"[evaluate] {', '.join(wrong)}: gate(s) of the other kind of detector; this model "
            f"({model}) is gated by [evaluate] {' and '.join(instead)}: rename the key(s).")


def primary(truths, heatmaps) -> float:
    """Centroid F1 of a model's heat maps (what the gates and the deploy policy compare)."""
    return centroids.scores(list(truths), np.asarray(heatmaps))["centroid_f1"]


def evaluate(test: dict, heatmaps: np.ndarray, examples, feature: str, config,
             class_names: list[str], evaluation_dir, model_dir, bless) -> dict[str, Any]:
    truths = list(test["objects"])
    metrics: dict[str, Any] = {**centroids.scores(truths, heatmaps, class_names=class_names),
                               "num_examples": len(truths), "grid": list(heatmaps.shape[1:3]),
                               "threshold": centroids.THRESHOLD}
    rows, misses, false_centroids = [], [], []
    rows_count, columns = heatmaps.shape[1:3]
    for record_id, truth, heatmap in zip(test["id"], truths, heatmaps):
        record_id = str(record_id.decode() if isinstance(record_id, bytes) else record_id)
        found = centroids.centroids(heatmap)
        truth_hit, found_hit = centroids.matched(truth, found, rows_count, columns)
        for (y, x, label, score), hit in zip(found, found_hit):
            rows.append({"id": record_id, "class": class_names[label], "score": score,
                         "y": y, "x": x, "matched": bool(hit)})
            if not hit:
                false_centroids.append({"id": record_id, "class": class_names[label],
                                        "score": score, "y": y, "x": x})
        missed = [{"class": class_names[int(label)], "box": [float(v) for v in box]}
                  for box, label, hit in zip(truth["bbox"], truth["label"], truth_hit) if not hit]
        if missed:
            misses.append({"id": record_id, "missed": missed, "boxes": int(len(truth["label"]))})
    misses.sort(key=lambda item: (-len(item["missed"]), item["id"]))
    false_centroids.sort(key=lambda item: (-item["score"], item["id"]))
    metrics["blessing"] = bless(metrics["centroid_f1"])
    count = config.singled_out_examples
    artifacts.write_centroid_evaluation(
        evaluation_dir, metrics, {"worst_misses": misses[:count],
                                  "confident_false_centroids": false_centroids[:count]}, rows)
    return metrics


def properties(metrics: dict[str, Any]) -> dict[str, Any]:
    return {"centroid_precision": metrics["centroid_precision"],
            "centroid_recall": metrics["centroid_recall"],
            "centroid_f1": metrics["centroid_f1"],
            "centroid_per_class": {name: {key: value[key] for key in ("precision", "recall", "f1")}
                                   for name, value in metrics["per_class"].items()},
            "num_examples": metrics["num_examples"]}


def gate_thresholds(config) -> tuple[float | None, float]:
    """(the absolute gate's minimum centroid F1 or None, the relative gate's allowed drop in
    points)."""
    refuse_gates(config, BOX_GATES, "a centroid detector, [train] model = \"fomo\"",
                 CENTROID_GATES)
    return config.min_centroid_f1, config.max_centroid_f1_drop


def extra(examples, model_dir, names, feature, evaluation_dir, config, predict) -> dict:
    return {}
