"""Regression fixtures: a generated table with a known answer (two targets, a nonlinear
function of four features, on a scale far from 0..1), and each stage's artifact built from
it by the real stages, once per test session (registered in tests/conftest.py)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

ROWS = 900
TARGETS = ["price", "delta"]


def truth(features: np.ndarray) -> np.ndarray:
    """The targets of a row: price in the hundreds (nonlinear), delta near 0 (linear)."""
    price = 400 + 60 * np.sin(features[:, 0]) + 25 * features[:, 1] ** 2 + 10 * features[:, 2]
    delta = features[:, 0] - 0.5 * features[:, 3]
    return np.stack([price, delta], axis=1)


@pytest.fixture(scope="session")
def regression_csv(tmp_path_factory):
    rng = np.random.default_rng(3)
    features = rng.normal(size=(ROWS, 4))
    targets = truth(features) + rng.normal(scale=[2.0, 0.02], size=(ROWS, 2))
    path = tmp_path_factory.mktemp("regression") / "table.csv"
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "a", "b", "c", "d", *TARGETS])
        for index, (row, target) in enumerate(zip(features, targets)):
            writer.writerow([f"r{index}", *(f"{v:.5f}" for v in row), *(f"{v:.5f}" for v in target)])
        writer.writerow(["empty", 1, 2, 3, 4, "", 0.5])        # missing target
        writer.writerow(["words", 1, 2, 3, 4, "cheap", 0.5])   # not a number
        writer.writerow(["infinite", 1, 2, 3, 4, "inf", 0.5])  # not finite
    return path


def ingest_config(path) -> dict:
    return {"task": "regression", "source": "csv", "train": str(path),
            "target_column": TARGETS, "id_column": "id", "columns_as": "channels",
            "test_fraction": 0.2, "validation_fraction": 0.1,
            "max_quarantine_fraction": 0.01}


@pytest.fixture(scope="session")
def regression_examples(run_stage, regression_csv):
    properties, outputs = run_stage("ingest", {}, ingest_config(regression_csv))
    return properties, outputs["examples"]


@pytest.fixture(scope="session")
def regression_statistics(run_stage, regression_examples):
    _, outputs = run_stage("statistics", {"examples": regression_examples[1]}, {})
    return outputs


@pytest.fixture(scope="session")
def regression_model(run_stage, regression_examples, regression_statistics):
    inputs = {"examples": regression_examples[1], **regression_statistics}
    properties, outputs = run_stage("train", inputs, {
        "task": "regression", "model": "mlp", "loss": "huber", "epochs": 60, "batch_size": 32,
        "learning_rate": 0.003, "model_options": {"hidden_units": [32, 16], "dropout": 0.0}})
    return properties, outputs["model"]


@pytest.fixture(scope="session")
def regression_evaluation(run_stage, regression_examples, regression_model):
    inputs = {"examples": regression_examples[1], "model": regression_model[1]}
    properties, outputs = run_stage("evaluate", inputs, {"task": "regression", "max_mae": 50.0})
    return properties, outputs["evaluation"]


@pytest.fixture(scope="session")
def regression_tflite(run_stage, regression_examples, regression_model):
    inputs = {"examples": regression_examples[1], "model": regression_model[1]}
    properties, outputs = run_stage("quantize", inputs, {
        "task": "regression", "variants": ["float32", "dynamic_range", "int8", "qat_int8"],
        "int8_io": "float32", "representative_examples": 200, "benchmark_tool": False,
        "max_metric_increase": 0.05})
    return properties, outputs["tflite"]
