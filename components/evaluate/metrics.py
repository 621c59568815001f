"""Metrics of the evaluate stage: pure numpy functions of labels and class probabilities.

Accuracy, mean cross entropy, per-class precision/recall/F1 with macro and weighted averages,
the confusion matrix, top-k accuracy, calibration (expected calibration error and the
reliability diagram's bins), the most confused class pairs, accuracy per slice of a feature,
and one row per prediction (with the lowest-confidence and most confidently wrong ones singled
out). Computed with numpy, so there is no scikit-learn dependency; where a definition has a
choice (a class never predicted has precision 0), it follows scikit-learn's.

Kept apart from stage.py (stage contract, running the model) and gates.py
because it needs neither TensorFlow nor the artifacts: it can be tested on hand-made arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray,
                    class_names: list[str]) -> dict[str, Any]:
    """Accuracy, mean cross entropy, per-class precision/recall/F1, averages, confusion."""
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = len(class_names)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"test labels range over {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}"
            " for the dataset's class names."
        )
    predictions = probabilities.argmax(axis=1)
    true_positives = np.bincount(labels[labels == predictions],
                                 minlength=num_classes).astype(np.float64)
    predicted = np.bincount(predictions, minlength=num_classes)
    support = np.bincount(labels, minlength=num_classes)
    # A class never predicted (or absent) has precision (recall) 0, as scikit-learn reports.
    precision = np.divide(true_positives, predicted, out=np.zeros(num_classes),
                          where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros(num_classes), where=support > 0)
    f1_denominator = precision + recall
    f1 = np.divide(2 * precision * recall, f1_denominator, out=np.zeros(num_classes),
                   where=f1_denominator > 0)
    total = int(support.sum())

    def average(weighting: np.ndarray) -> dict[str, float]:
        return {"precision": float(np.sum(precision * weighting)),
                "recall": float(np.sum(recall * weighting)),
                "f1": float(np.sum(f1 * weighting)), "support": total}

    return {
        "accuracy": float(true_positives.sum() / total),
        "loss": _mean_loss(labels, probabilities),
        "num_examples": total,
        "per_class": {
            name: {"precision": float(precision[index]), "recall": float(recall[index]),
                   "f1": float(f1[index]), "support": int(support[index])}
            for index, name in enumerate(class_names)
        },
        "macro_avg": average(np.full(num_classes, 1.0 / num_classes)),
        "weighted_avg": average(support / total),
        "confusion": confusion_of(labels, predictions, num_classes),
    }


# Above this many classes the confusion is written as its non-zero cells (a dense 10,000-class
# matrix is 100 M numbers: 859 MB of JSON for 10,000 test examples).
DENSE_CONFUSION_MAX_CLASSES = 100


def confusion_of(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> dict:
    """{"matrix": rows = true class, columns = predicted} for up to
    DENSE_CONFUSION_MAX_CLASSES classes, else {"cells": [[true, predicted, count], ...]}
    (the non-zero cells, by true then predicted class): its size follows the examples."""
    pairs, counts = np.unique(np.asarray(labels, np.int64) * num_classes + predictions,
                              return_counts=True)
    if num_classes <= DENSE_CONFUSION_MAX_CLASSES:
        matrix = np.zeros(num_classes * num_classes, dtype=np.int64)
        matrix[pairs] = counts
        return {"matrix": matrix.reshape(num_classes, num_classes).tolist()}
    return {"cells": [[int(pair // num_classes), int(pair % num_classes), int(count)]
                      for pair, count in zip(pairs, counts)]}


def confusion_cells(confusion: dict) -> list[tuple[int, int, int]]:
    """(true, predicted, count) of every non-zero cell of either form of the confusion."""
    if "cells" in confusion:
        return [tuple(cell) for cell in confusion["cells"]]
    return [(true, predicted, int(value)) for true, row in enumerate(confusion["matrix"])
            for predicted, value in enumerate(row) if value]


def _mean_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    # Probabilities are clipped so that a confident mistake costs a large but finite loss.
    picked = probabilities[np.arange(len(labels)), labels]
    return float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))


def top_k_accuracy(labels, probabilities: np.ndarray, ks) -> dict[str, float]:
    """{k: share of examples whose true class is among the k most probable} (k < classes)."""
    # Stable sort: ties are broken by class index, the same way argmax breaks them.
    ranking = np.argsort(-probabilities, axis=1, kind="stable")
    return {str(k): float(np.mean((ranking[:, :k] == np.asarray(labels)[:, None]).any(axis=1)))
            for k in ks if k < probabilities.shape[1]}


def calibration(labels, probabilities: np.ndarray, bins: int) -> dict[str, Any]:
    """Expected calibration error and the reliability diagram's bins (equal-width confidence)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin b holds confidences in (edge b, edge b+1]; a confidence of exactly 0 goes to bin 0.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for number in range(bins):
        members = index == number
        count = int(members.sum())
        row = {"lower": float(edges[number]), "upper": float(edges[number + 1]), "count": count,
               "confidence": None, "accuracy": None}
        if count:
            row["confidence"] = float(confidence[members].mean())
            row["accuracy"] = float(correct[members].mean())
            ece += count / len(confidence) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {"ece": float(ece), "mean_confidence": float(confidence.mean()), "bins": rows}


def confused_pairs(confusion: dict, class_names: list[str], count: int) -> list[dict[str, Any]]:
    """The off-diagonal cells with the most examples: (true class, predicted class) pairs."""
    support = np.zeros(len(class_names), dtype=np.int64)
    cells = []
    for true, predicted, value in confusion_cells(confusion):
        support[true] += value
        if true != predicted:
            cells.append((value, true, predicted))
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [{"true": class_names[true], "predicted": class_names[predicted], "count": value,
             "share_of_true": value / int(support[true])}
            for value, true, predicted in cells[:count]]


def slice_groups(values, buckets: int) -> tuple[list[tuple[str, np.ndarray]], str]:
    """([(group name, member mask)], how they were made): one group per value, or quantile
    buckets of the test split for numeric features with more than `buckets` values."""
    values = np.asarray(values)
    distinct = np.unique(values)
    if values.dtype.kind in "iuf" and len(distinct) > buckets:
        inner = np.quantile(values, np.linspace(0, 1, buckets + 1))[1:-1]
        # Integer features (lengths) get integer edges: "[13, 15)" rather than "[12.25, 15)".
        inner = np.unique(np.ceil(inner) if values.dtype.kind in "iu" else inner)
        edges = [float(values.min()), *map(float, inner), float(values.max())]
        index = np.searchsorted(inner, values, side="right")
        return ([(f"[{edges[number]:.4g}, {edges[number + 1]:.4g}"
                  f"{']' if number == len(edges) - 2 else ')'}", index == number)
                 for number in range(len(edges) - 1)], "quantile buckets of the test split")
    return [(str(value), values == value) for value in distinct], "one row per value"


def slice_metrics(values: np.ndarray, labels, probabilities: np.ndarray, buckets: int,
                  description: str) -> dict[str, Any]:
    """Accuracy per value of a feature; numeric features with many values go in quantile buckets."""
    labels = np.asarray(labels)
    correct = probabilities.argmax(axis=1) == labels
    confidence = probabilities.max(axis=1)
    groups, kind = slice_groups(values, buckets)
    rows = [{"value": name, "num_examples": int(members.sum()),
             "accuracy": float(correct[members].mean()),
             "mean_confidence": float(confidence[members].mean()),
             "loss": _mean_loss(labels[members], probabilities[members])}
            for name, members in groups if members.any()]
    return {"description": description, "grouping": kind, "rows": rows}


def prediction_rows(ids, labels, probabilities: np.ndarray,
                    class_names: list[str]) -> list[dict[str, Any]]:
    """One row per example: id, label, prediction, confidence, entropy (nats), names."""
    predictions = probabilities.argmax(axis=1)
    clipped = np.clip(probabilities, 1e-12, 1.0)
    entropy = -(probabilities * np.log(clipped)).sum(axis=1)
    return [{"id": _text(record_id), "label": int(label), "prediction": int(prediction),
             "label_name": class_names[label], "prediction_name": class_names[prediction],
             "confidence": float(row[prediction]), "true_probability": float(row[label]),
             "entropy": float(max(value, 0.0))}
            for record_id, label, prediction, row, value
            in zip(ids, labels, predictions, probabilities, entropy)]


def single_out(rows: list[dict[str, Any]], count: int) -> dict[str, list[dict[str, Any]]]:
    """The least confident predictions, and the wrong ones the model was surest of."""
    lowest = sorted(rows, key=lambda row: (row["confidence"], row["id"]))[:count]
    wrong = [row for row in rows if row["label"] != row["prediction"]]
    confident_wrong = sorted(wrong, key=lambda row: (-row["confidence"], row["id"]))[:count]
    return {"lowest_confidence": lowest, "most_confidently_wrong": confident_wrong}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


RANKINGS = ("least_confidence", "margin", "entropy")


def labeling_queue(ids, probabilities: np.ndarray, class_names: list[str], sources: dict,
                   ranking: str, size: int = 0) -> list[dict[str, Any]]:
    """Unlabelled records, the most useful to label first: "least_confidence" (lowest top
    probability), "margin" (smallest gap between the two most probable classes) or
    "entropy" (highest entropy of the prediction, in nats); ties go by id. `size` > 0 keeps
    that many."""
    if ranking not in RANKINGS:
        raise ValueError(f"labeling queue ranking {ranking!r} is not one of {list(RANKINGS)}")
    ordered = np.sort(probabilities, axis=1)
    confidence = ordered[:, -1]
    margin = confidence - (ordered[:, -2] if probabilities.shape[1] > 1 else 0.0)
    entropy = np.maximum(-(probabilities * np.log(np.clip(probabilities, 1e-12, 1.0))).sum(1),
                         0.0)
    ids = [_text(record_id) for record_id in ids]
    score = {"least_confidence": confidence, "margin": margin, "entropy": -entropy}[ranking]
    order = sorted(range(len(ids)), key=lambda index: (float(score[index]), ids[index]))
    predictions = probabilities.argmax(axis=1)
    return [{"rank": rank, "id": ids[index], "source": sources.get(ids[index], ""),
             "predicted": class_names[predictions[index]],
             "confidence": float(confidence[index]), "margin": float(margin[index]),
             "entropy": float(entropy[index])}
            for rank, index in enumerate(order[:size or None], start=1)]
