"""The report's centroid-detection piece ([train] model = "fomo"): centroid precision, recall
and F1 over the test split and per class, test images with their true box centres (green
circles) and predicted centroids (red crosses with class and score), the images with the
most missed objects and the most confident false centroids (evaluate's singled_out.json).
The data section (boxes per class and split) is the box detector's (detection.py)."""

from __future__ import annotations

import csv
import pathlib
from typing import Any

import numpy as np

from edgepipe.components.report import detection
from edgepipe.contracts import artifacts

TEMPLATE = "centroids.html"


def sections_of(inputs, model_dir, evaluation_dir: pathlib.Path, model_info: dict, feature: str,
                config, test: dict) -> dict[str, Any]:
    names = list(model_info["class_names"])
    metrics = artifacts.read_metrics(evaluation_dir)
    predicted = _predictions(evaluation_dir, names)
    position, singled, count, shown, misses, false_ids = detection.picks(
        evaluation_dir, config, test, "confident_false_centroids")
    evaluation = {
        **{key: float(metrics[key]) for key in ("centroid_precision", "centroid_recall",
                                                "centroid_f1")},
        "num_examples": int(metrics["num_examples"]),
        "true_objects": int(metrics["true_objects"]),
        "predicted_centroids": int(metrics["predicted_centroids"]),
        "grid": metrics["grid"],
        "per_class": [{"name": name, **metrics["per_class"][name]} for name in names],
        "gates": metrics["blessing"]["gates"],
    }
    draw = lambda ids: _centroids_figure(ids, position, test, predicted, names)  # noqa: E731
    return {
        "data": detection._data(inputs["examples"], inputs["statistics"].path, feature, names),
        "evaluation": evaluation,
        "galleries": {"test_images": draw(shown),
                      "worst_misses": draw(misses), "false_centroids": draw(false_ids),
                      "misses_table": singled.get("worst_misses", [])[:count],
                      "false_table": singled.get("confident_false_centroids", [])[:count]},
        "semi_supervised": None,
        "cards": [
            {"label": "Test centroid F1", "value": f"{evaluation['centroid_f1']:.3f}",
             "note": f"{evaluation['num_examples']} test images, {evaluation['true_objects']} "
                     "objects; a centroid within one grid cell of a true centre of its class"},
            {"label": "Precision / recall", "value": f"{evaluation['centroid_precision']:.3f}"
                                                     f" / {evaluation['centroid_recall']:.3f}",
             "note": f"{evaluation['predicted_centroids']} predicted centroids"},
        ],
    }


def _predictions(evaluation_dir: pathlib.Path, names: list[str]) -> dict[str, list]:
    """{record id: [(class index, score, y, x), ...]} of predictions.csv."""
    found: dict[str, list] = {}
    with open(evaluation_dir / artifacts.PREDICTIONS, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            found.setdefault(row["id"], []).append((names.index(row["class"]),
                                                    float(row["score"]), float(row["y"]),
                                                    float(row["x"])))
    return found


def _centroids_figure(ids: list[str], position: dict, test: dict, predicted: dict,
                      names: list[str]) -> str:
    """Test images with their true box centres (green circles) and predicted centroids (red
    crosses, with class and score)."""
    def draw(axis, record_id: str, index: int, height: int, width: int) -> None:
        boxes = np.asarray(test["objects"][index]["bbox"], np.float64).reshape(-1, 4)
        axis.scatter((boxes[:, 1] + boxes[:, 3]) / 2 * width,
                     (boxes[:, 0] + boxes[:, 2]) / 2 * height, s=60, facecolors="none",
                     edgecolors="#00c853", linewidths=1.5)
        for label, score, y, x in predicted.get(record_id, []):
            axis.plot(x * width, y * height, marker="x", color="#d50000", markersize=7)
            axis.text(x * width + 2, y * height - 2, f"{names[label]} {score:.2f}",
                      color="white", fontsize=6, backgroundcolor="#d50000")

    return detection.images_figure(ids, position, test, draw)


def summary(page: dict[str, Any]) -> dict[str, Any]:
    evaluation = page["evaluation"]
    return {**{key: evaluation[key] for key in ("centroid_precision", "centroid_recall",
                                                "centroid_f1", "num_examples")},
            "centroid_per_class": {row["name"]: {key: row[key] for key in
                                                 ("precision", "recall", "f1")}
                                   for row in evaluation["per_class"]}}
