"""The evaluate stage's detection piece: COCO mAP@[.5:.95] and mAP@.5 (pycocotools), AP and the
precision-recall curve per class, one row per detection, and the galleries' picks: the images
with the most missed boxes and the most confident false boxes (at IoU 0.5, among detections
scoring at least GALLERY_SCORE, what an application would show)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.components.shared import box_metrics
from edgepipe.contracts import artifacts

GALLERY_SCORE = 0.5


def per_image(test: dict, outputs: dict) -> list[dict]:
    return [box_metrics.detections_of(outputs, index) for index in range(len(test["id"]))]


def primary(truths, outputs) -> float:
    """mAP@.5 of a model's outputs (what the gates and the deploy policy compare)."""
    detections = [box_metrics.detections_of(outputs, index) for index in range(len(truths))]
    names = sorted({int(label) for truth in truths for label in truth["label"]}
                   | {int(c) for found in detections for c in found["classes"]})
    return box_metrics.coco_map(truths, detections, [str(name) for name in
                                                     range(max(names, default=0) + 1)],
                                (1, 1))["map_50"]


def evaluate(test: dict, outputs: dict, examples, feature: str, config,
             class_names: list[str], evaluation_dir, model_dir, bless) -> dict[str, Any]:
    truths = list(test["objects"])
    detections = per_image(test, outputs)
    shape = tuple(test["image"].shape[1:3])
    metrics: dict[str, Any] = {
        **box_metrics.coco_map(truths, detections, class_names, shape),
        "num_examples": len(truths), "num_boxes": int(sum(len(t["label"]) for t in truths)),
        "num_detections": int(sum(len(d["scores"]) for d in detections))}
    rows, misses, false_boxes = [], [], []
    for record_id, truth, found in zip(test["id"], truths, detections):
        truth_matched, found_matched = box_metrics.match(truth, found)
        shown_truth, _ = box_metrics.match(truth, found, min_score=GALLERY_SCORE)
        for box, label, score, matched in zip(found["boxes"], found["classes"],
                                              found["scores"], found_matched):
            rows.append({"id": str(record_id), "class": class_names[label], "score": score,
                         "box": box.tolist(), "matched": bool(matched)})
            if not matched and score >= GALLERY_SCORE:
                false_boxes.append({"id": str(record_id), "class": class_names[label],
                                    "score": float(score), "box": box.tolist()})
        missed = [{"class": class_names[label], "box": box.tolist()}
                  for box, label, hit in zip(truth["bbox"], truth["label"], shown_truth)
                  if not hit]
        if missed:
            misses.append({"id": str(record_id), "missed": missed,
                           "boxes": int(len(truth["label"]))})
    misses.sort(key=lambda item: (-len(item["missed"]), item["id"]))
    false_boxes.sort(key=lambda item: (-item["score"], item["id"]))
    metrics["blessing"] = bless(metrics["map_50"])
    count = config.singled_out_examples
    artifacts.write_detection_evaluation(
        evaluation_dir, metrics,
        {"worst_misses": misses[:count], "confident_false_boxes": false_boxes[:count]}, rows)
    return metrics


def properties(metrics: dict[str, Any]) -> dict[str, Any]:
    return {"map_50_95": metrics["map_50_95"], "map_50": metrics["map_50"],
            "ap_50_per_class": {name: value["ap_50"]
                                for name, value in metrics["per_class"].items()},
            "num_examples": metrics["num_examples"]}


def gate_thresholds(config) -> tuple[float | None, float]:
    """(the absolute gate's minimum mAP@.5 or None, the relative gate's allowed drop in
    points)."""
    from edgepipe.components.evaluate import centroids

    centroids.refuse_gates(config, centroids.CENTROID_GATES, "a box detector",
                           centroids.BOX_GATES)
    return config.min_map_50, config.max_map_50_drop


def extra(examples, model_dir, names, feature, evaluation_dir, config, predict) -> dict:
    return {}
