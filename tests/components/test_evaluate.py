"""The evaluate stage: metrics that agree with each other and with the model, and the gate."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from components import evaluate, examples_io
from tests.conftest import CLASS_NAMES


def _predictions(evaluation_artifact) -> list[dict]:
    with open(evaluation_artifact.path / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_confusion_matrix_covers_the_test_split(evaluation_artifact, examples_artifact):
    confusion = json.loads((evaluation_artifact.path / "confusion.json").read_text())
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    matrix = np.array(confusion["matrix"])
    test_size = examples_io.split_size(examples_artifact.path, "test")
    assert confusion["class_names"] == list(CLASS_NAMES)
    assert matrix.shape == (10, 10)
    assert matrix.sum() == test_size == metrics["num_examples"] == 100
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["accuracy"])
    # Rows are true labels: their sums are the per-class supports.
    labels = examples_io.load_numpy(examples_artifact.path, "test")["label"]
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(labels, minlength=10))


def test_predictions_csv_agrees_with_metrics_and_the_model(
    evaluation_artifact, examples_artifact, model_artifact
):
    from models.keras import keras

    rows = _predictions(evaluation_artifact)
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    test = examples_io.load_numpy(examples_artifact.path, "test")
    assert [row["id"] for row in rows] == [str(record_id) for record_id in test["id"]]
    labels = np.array([int(row["label"]) for row in rows])
    predictions = np.array([int(row["prediction"]) for row in rows])
    confidence = np.array([float(row["confidence"]) for row in rows])
    np.testing.assert_array_equal(labels, test["label"])
    assert np.mean(labels == predictions) == pytest.approx(metrics["accuracy"])
    assert evaluation_artifact.properties["accuracy"] == pytest.approx(metrics["accuracy"])

    # Independently: the Keras model on the same images gives the same answers and loss.
    model = keras.models.load_model(model_artifact.path / "model.keras")
    probabilities = model.predict(test["image"].astype("float32"), verbose=0)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), predictions)
    np.testing.assert_allclose(probabilities.max(axis=1), confidence, atol=1e-5)
    loss = np.mean(-np.log(probabilities[np.arange(len(labels)), labels]))
    assert metrics["loss"] == pytest.approx(loss, rel=1e-4)


def test_per_class_metrics_are_consistent(evaluation_artifact):
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    confusion = json.loads((evaluation_artifact.path / "confusion.json").read_text())
    matrix = np.array(confusion["matrix"])
    per_class = metrics["per_class"]
    assert list(per_class) == list(CLASS_NAMES)
    for index, name in enumerate(CLASS_NAMES):
        entry = per_class[name]
        assert entry["support"] == matrix[index].sum()
        if matrix[index].sum():
            assert entry["recall"] == pytest.approx(matrix[index, index] / matrix[index].sum())
        if matrix[:, index].sum():
            predicted = matrix[:, index].sum()
            assert entry["precision"] == pytest.approx(matrix[index, index] / predicted)
    assert metrics["macro_avg"]["f1"] == pytest.approx(
        np.mean([entry["f1"] for entry in per_class.values()])
    )
    # Weighted recall is the accuracy: each class's recall weighted by its share of examples.
    assert metrics["weighted_avg"]["recall"] == pytest.approx(metrics["accuracy"])


def test_compute_metrics_on_a_hand_checked_case():
    labels = np.array([0, 0, 1, 2])
    probabilities = np.array([
        [0.9, 0.1, 0.0],  # 0 -> 0
        [0.2, 0.8, 0.0],  # 0 -> 1
        [0.3, 0.7, 0.0],  # 1 -> 1
        [0.6, 0.4, 0.0],  # 2 -> 0, class 2 never predicted
    ])
    metrics = evaluate.compute_metrics(labels, probabilities, ["a", "b", "c"])
    assert metrics["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert metrics["accuracy"] == 0.5
    assert metrics["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert metrics["per_class"]["b"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # The true class got probability 0 once: the loss is large but finite (clipped at 1e-7).
    expected_loss = -(np.log(0.9) + np.log(0.2) + np.log(0.7) + np.log(1e-7)) / 4
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-6)


def test_blessing_follows_the_threshold(run_stage, examples_artifact, model_artifact):
    inputs = {"examples": examples_artifact, "model": model_artifact}
    properties, artifacts = run_stage("evaluate", inputs, {"min_accuracy": 0.0})
    path = artifacts["evaluation"].path
    accuracy = properties["accuracy"]
    assert properties["blessed"] is True
    assert (path / "BLESSED").read_text().strip() == f"accuracy {accuracy:.3f} >= threshold 0.000"
    assert not (path / "NOT_BLESSED").exists()

    assert accuracy < 1.0  # two epochs on 240 images cannot be perfect
    properties, artifacts = run_stage("evaluate", inputs, {"min_accuracy": 1.0})
    path = artifacts["evaluation"].path
    assert properties["blessed"] is False
    assert properties["reason"] == f"accuracy {accuracy:.3f} < threshold 1.000"
    assert (path / "NOT_BLESSED").read_text().strip() == properties["reason"]
    assert not (path / "BLESSED").exists()


def test_threshold_outside_zero_to_one_is_rejected():
    with pytest.raises(ValueError, match="min_accuracy"):
        evaluate.Config(min_accuracy=85)
