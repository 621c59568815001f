"""Evaluate stage: measure the exported model on the test split and decide whether to bless it.

It runs the SavedModel's serving signature on raw uint8 images, because that is what gets
deployed: a bug in the export shows up here, not in production. Metrics are computed with
numpy from the confusion matrix (no scikit-learn dependency). TensorFlow is imported inside
`run` so that a cached pipeline never pays for importing it.
"""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any

import numpy as np
import pydantic

from components import examples_io
from pipeline.stage import StageConfig

NAME = "evaluate"
VERSION = 1
INPUTS = {"examples": "Examples", "model": "Model"}
OUTPUTS = {"evaluation": "Evaluation"}
CODE = ("components.examples_io",)

BATCH_SIZE = 256  # images per call of the serving signature; does not change results


class Config(StageConfig):
    # The model is BLESSED when its test accuracy is at least this (0..1), else NOT_BLESSED.
    min_accuracy: float = pydantic.Field(0.0, ge=0.0, le=1.0)


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    import tensorflow as tf

    examples = inputs["examples"].path
    model_dir = pathlib.Path(inputs["model"].path)
    evaluation_dir = pathlib.Path(outputs["evaluation"])
    class_names = examples_io.class_names(examples)
    test = examples_io.load_numpy(examples, "test")
    if len(test["label"]) == 0:
        raise ValueError(f"{examples}: the test split is empty; there is nothing to evaluate.")

    saved_model = model_dir / "saved_model"
    if not saved_model.is_dir():
        raise FileNotFoundError(
            f"{saved_model} does not exist: the Model artifact must hold the SavedModel the "
            "train stage exports. Re-run train."
        )
    serve = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    probabilities = np.concatenate([
        serve(image=tf.constant(test["image"][start:start + BATCH_SIZE]))["probabilities"].numpy()
        for start in range(0, len(test["image"]), BATCH_SIZE)
    ])
    if probabilities.shape != (len(test["label"]), len(class_names)):
        raise ValueError(
            f"{saved_model}: the model returned probabilities of shape {probabilities.shape}, "
            f"expected ({len(test['label'])}, {len(class_names)}) for the {len(class_names)} "
            f"classes of {examples}. Were model and examples built from the same data?"
        )

    metrics = compute_metrics(test["label"], probabilities, class_names)
    confusion = metrics.pop("confusion")
    accuracy = metrics["accuracy"]
    blessed = accuracy >= config.min_accuracy
    reason = (
        f"accuracy {accuracy:.3f} {'>=' if blessed else '<'} threshold {config.min_accuracy:.3f}"
    )
    predictions = probabilities.argmax(axis=1)
    _write_json(evaluation_dir / "metrics.json", metrics)
    _write_json(evaluation_dir / "confusion.json",
                {"class_names": class_names, "matrix": confusion})
    with open(evaluation_dir / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "prediction", "confidence"])
        for record_id, label, prediction, row in zip(
            test["id"], test["label"], predictions, probabilities
        ):
            writer.writerow([_text(record_id), int(label), int(prediction),
                             f"{float(row[prediction]):.6f}"])
    (evaluation_dir / ("BLESSED" if blessed else "NOT_BLESSED")).write_text(reason + "\n")
    context.log.info("%s on %d test examples: %s", "BLESSED" if blessed else "NOT_BLESSED",
                     metrics["num_examples"], reason)
    return {
        "accuracy": accuracy,
        "loss": metrics["loss"],
        "blessed": bool(blessed),
        "reason": reason,
        "num_examples": metrics["num_examples"],
    }


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
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)

    true_positives = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    # A class never predicted (or absent) has precision (recall) 0, as scikit-learn reports.
    precision = np.divide(true_positives, predicted, out=np.zeros(num_classes),
                          where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros(num_classes), where=support > 0)
    f1_denominator = precision + recall
    f1 = np.divide(2 * precision * recall, f1_denominator, out=np.zeros(num_classes),
                   where=f1_denominator > 0)

    # Probabilities are clipped so that a confident mistake costs a large but finite loss.
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))
    total = int(support.sum())
    weights = support / total

    def average(weighting: np.ndarray) -> dict[str, float]:
        return {
            "precision": float(np.sum(precision * weighting)),
            "recall": float(np.sum(recall * weighting)),
            "f1": float(np.sum(f1 * weighting)),
            "support": total,
        }

    return {
        "accuracy": float(true_positives.sum() / total),
        "loss": loss,
        "num_examples": total,
        "per_class": {
            name: {"precision": float(precision[index]), "recall": float(recall[index]),
                   "f1": float(f1[index]), "support": int(support[index])}
            for index, name in enumerate(class_names)
        },
        "macro_avg": average(np.full(num_classes, 1.0 / num_classes)),
        "weighted_avg": average(weights),
        "confusion": confusion.tolist(),
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _write_json(path: pathlib.Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
