"""The evaluate stage's classification piece: accuracy, cross entropy, per-class scores, the
confusion matrix, top-k accuracy, calibration, the most confused pairs, accuracy per slice,
one row per prediction (the least confident and the most confidently wrong singled out) and,
with an unlabeled split, the labelling queue. The numbers come from metrics.py (pure numpy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.components.evaluate import slices, streaming
from edgepipe.components.evaluate.metrics import (calibration, compute_metrics, confused_pairs,
                                                  labeling_queue, prediction_rows, single_out,
                                                  slice_metrics, top_k_accuracy)
from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, unlabeled_artifacts


def primary(labels, probabilities) -> float:
    """The task's primary metric (accuracy): what the gates and the deploy policy compare."""
    return float(np.mean(np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)))


def gate_thresholds(config) -> tuple[float, float]:
    """(the absolute gate's minimum accuracy, the relative gate's allowed drop in points)."""
    return config.min_accuracy, config.max_accuracy_drop


def check_shape(probabilities, labels, class_names, model_dir, examples) -> None:
    if probabilities.shape != (len(labels), len(class_names)):
        raise ValueError(
            f"{model_dir / artifacts.SAVED_MODEL}: the model returned probabilities of shape "
            f"{probabilities.shape}, expected ({len(labels)}, {len(class_names)}) for the "
            f"{len(class_names)} classes of {examples}. Were model and examples built from the "
            "same data?"
        )


def evaluate(test: dict, probabilities: np.ndarray, examples, feature: str, config,
             class_names: list[str], evaluation_dir, model_dir, bless) -> dict[str, Any]:
    """metrics.json (with the blessing `bless(accuracy)` gives), confusion.json,
    singled_out.json and predictions.csv; returns the metrics."""
    labels = test["label"]
    check_shape(probabilities, labels, class_names, model_dir, examples.path)
    metrics = compute_metrics(labels, probabilities, class_names)
    confusion = metrics.pop("confusion")
    metrics["top_k_accuracy"] = top_k_accuracy(labels, probabilities, config.top_k)
    metrics["calibration"] = calibration(labels, probabilities, config.calibration_bins)
    metrics["confused_pairs"] = confused_pairs(confusion, class_names, config.confused_pairs)
    metrics["slices"] = {
        name: slice_metrics(values, labels, probabilities, config.slice_buckets, description)
        for name, (values, description)
        in slices.slice_features(examples, feature, test, config).items()
    }
    metrics["blessing"] = bless(metrics["accuracy"])
    rows = prediction_rows(test["id"], labels, probabilities, class_names)
    artifacts.write_evaluation(evaluation_dir, metrics, class_names, confusion,
                               single_out(rows, config.singled_out_examples), rows)
    return metrics


def properties(metrics: dict[str, Any]) -> dict[str, Any]:
    """The run summary's view of the metrics."""
    return {"accuracy": metrics["accuracy"], "loss": metrics["loss"],
            "ece": metrics["calibration"]["ece"], "num_examples": metrics["num_examples"]}


def extra(examples, model_dir, class_names, feature, evaluation_dir, config,
          predict) -> dict[str, Any]:
    """labeling_queue.csv from the serving model's predictions on the unlabeled split, and
    the stage's properties about it ({} without unlabelled examples); for a keyword model
    (audio examples) the streaming figures too (streaming.json)."""
    found = {}
    if feature == "audio" and config.stream_minutes > 0:
        test = examples_io.load_numpy(examples, "test")
        figures = streaming.evaluate(test, class_names, examples_io.sample_rate(examples),
                                     lambda windows: predict(model_dir, windows), config)
        artifacts.write_streaming(evaluation_dir, figures)
        found["streaming"] = {key: figures[key] for key in (
            "stream_seconds", "keywords_in_stream", "misses", "false_accepts",
            "false_accepts_per_hour", "miss_rate", "threshold")}
    return {**found, **_labeling_queue(examples, model_dir, class_names, feature,
                                       evaluation_dir, config, predict)}


def _labeling_queue(examples, model_dir, class_names, feature, evaluation_dir, config,
                    predict) -> dict[str, Any]:
    if "unlabeled" not in examples_io.split_names(examples) or not examples_io.split_size(
            examples, "unlabeled"):
        return {}
    unlabeled = examples_io.load_numpy(examples, "unlabeled")
    probabilities = predict(model_dir, unlabeled[feature])
    rows = labeling_queue(unlabeled["id"], probabilities, class_names,
                          unlabeled_artifacts.read_unlabeled_sources(examples),
                          config.labeling_queue, config.labeling_queue_size)
    unlabeled_artifacts.write_labeling_queue(evaluation_dir, rows)
    predicted = probabilities.argmax(axis=1)
    return {"labeling_queue": {
        "ranking": config.labeling_queue, "records": len(rows), "unlabeled": len(predicted),
        "top": [row["id"] for row in rows[:5]],
        "predicted_per_class": {name: int((predicted == index).sum())
                                for index, name in enumerate(class_names)}}}
