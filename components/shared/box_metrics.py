"""Detection metrics (task detection), shared by evaluate and quantize: COCO mAP@[.5:.95] and
mAP@.5 by pycocotools (the reference implementation), per-class AP and precision-recall
curves from its accumulated table, and a greedy IoU match that names the missed true boxes
and the false detections.

Boxes are (ymin, xmin, ymax, xmax) fractions of the [height, width] model input, as the
Examples and the model's outputs hold them; detections are {"boxes" [K, 4], "classes" [K],
"scores" [K], "count"} per image.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np


def detections_of(outputs: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """Image `index`'s detections from batched postprocess outputs (any key prefix)."""
    found = {key.rsplit("_", 1)[-1]: value for key, value in outputs.items()}
    count = int(found["count"][index])
    return {"boxes": np.asarray(found["boxes"][index][:count], np.float64).reshape(-1, 4),
            "classes": np.asarray(found["classes"][index][:count]).astype(np.int64),
            "scores": np.asarray(found["scores"][index][:count], np.float64)}


def _xywh(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 1] * width, boxes[:, 0] * height,
                     (boxes[:, 3] - boxes[:, 1]) * width,
                     (boxes[:, 2] - boxes[:, 0]) * height], axis=1)


def coco_map(truths, detections: list[dict], class_names: list[str],
             shape: tuple[int, int]) -> dict[str, Any]:
    """{"map_50_95", "map_50", "per_class": {name: {"ap_50", "ap_50_95", "boxes"}},
    "pr_curves": {name: {"recall": [...], "precision": [...]}} (IoU 0.5)}."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    height, width = shape
    images, annotations, results = [], [], []
    for index, (truth, found) in enumerate(zip(truths, detections), start=1):
        images.append({"id": index, "height": height, "width": width})
        for box, label in zip(_xywh(truth["bbox"], height, width), truth["label"]):
            annotations.append({"id": len(annotations) + 1, "image_id": index,
                                "category_id": int(label) + 1, "bbox": box.tolist(),
                                "area": float(box[2] * box[3]), "iscrowd": 0})
        for box, label, score in zip(_xywh(found["boxes"], height, width), found["classes"],
                                     found["scores"]):
            results.append({"image_id": index, "category_id": int(label) + 1,
                            "bbox": box.tolist(), "score": float(score)})
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(class_names)]
    empty = {"map_50_95": 0.0, "map_50": 0.0, "pr_curves": {},
             "per_class": {name: {"ap_50": 0.0, "ap_50_95": 0.0} for name in class_names}}
    if not results or not annotations:
        return empty
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth_set = COCO()
        truth_set.dataset = {"images": images, "annotations": annotations,
                             "categories": categories}
        truth_set.createIndex()
        evaluation = COCOeval(truth_set, truth_set.loadRes(results), "bbox")
        evaluation.params.maxDets = [1, 10, max(100, max(len(d["scores"]) for d in detections))]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # [IoU, recall, class, area, max detections]
    per_class, curves = {}, {}
    for index, name in enumerate(class_names):
        table = precision[:, :, index, 0, -1]
        valid = table > -1
        per_class[name] = {
            "ap_50_95": float(table[valid].mean()) if valid.any() else None,
            "ap_50": float(table[0][valid[0]].mean()) if valid[0].any() else None,
            "boxes": int(sum(1 for a in annotations if a["category_id"] == index + 1))}
        if valid[0].any():
            curves[name] = {"recall": evaluation.params.recThrs.tolist(),
                            "precision": np.maximum(table[0], 0.0).tolist()}
    return {"map_50_95": max(float(evaluation.stats[0]), 0.0),
            "map_50": max(float(evaluation.stats[1]), 0.0),
            "per_class": per_class, "pr_curves": curves}


def iou_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    first, second = np.asarray(first).reshape(-1, 4), np.asarray(second).reshape(-1, 4)
    top = np.maximum(first[:, None, 0], second[None, :, 0])
    left = np.maximum(first[:, None, 1], second[None, :, 1])
    bottom = np.minimum(first[:, None, 2], second[None, :, 2])
    right = np.minimum(first[:, None, 3], second[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area(first)[:, None] + area(second)[None, :] - inter, 1e-12)


def match(truth: dict, found: dict, threshold: float = 0.5,
          min_score: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(matched flag per true box, matched flag per detection): detections from the most
    confident down each take the unmatched true box of their class they overlap most at IoU
    >= threshold (COCO's rule at one IoU)."""
    kept = found["scores"] >= min_score
    order = np.argsort(-found["scores"], kind="stable")
    overlaps = iou_matrix(found["boxes"], truth["bbox"])
    truth_matched = np.zeros(len(truth["label"]), bool)
    found_matched = np.zeros(len(found["scores"]), bool)
    for index in order:
        if not kept[index]:
            continue
        candidates = np.where((truth["label"] == found["classes"][index]) & ~truth_matched,
                              overlaps[index], -1.0)
        if len(candidates) and candidates.max() >= threshold:
            truth_matched[candidates.argmax()] = found_matched[index] = True
    return truth_matched, found_matched
