"""Forecasting fixtures: a tiny long-format CSV of monthly series with a known shape (a level,
a trend and a yearly cycle, levels from tens to thousands) plus one series for each bad case,
and each stage's artifact built from it by the real stages, once per test session
(registered in tests/conftest.py)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

HORIZON, LOOKBACK, SEASONALITY = 3, 12, 12
GOOD = 8          # well-formed series of 48 months
LENGTH = 48
SHORT = 11        # "short": shorter than the lookback (12), longer than min_history (10)


def month(index: int) -> str:
    return f"{2015 + index // 12}-{index % 12 + 1:02d}-01"


def series_values(level: float, index: np.ndarray, phase: float) -> np.ndarray:
    return level * (1.0 + 0.01 * index + 0.3 * np.sin(2 * np.pi * index / 12 + phase))


def rows() -> list[list[str]]:
    """(series_id, timestamp, value, promo) rows in file order."""
    table = []
    steps = np.arange(LENGTH)
    for number in range(GOOD):
        values = series_values(10.0 * 3 ** (number % 5), steps, number)
        table += [[f"s{number}", month(i), f"{v:.4f}", str(i % 2)] for i, v in enumerate(values)]
    base = series_values(100.0, steps, 0.5)
    gappy = [[ "gappy", month(i), f"{v:.4f}", "0"] for i, v in enumerate(base) if i != 20]
    dupes = [["dupes", month(i), f"{v:.4f}", "0"] for i, v in enumerate(base)]
    dupes.insert(30, ["dupes", month(29), "999", "0"])  # 29 twice; the later row (30) wins
    backwards = [["backwards", month(i), f"{v:.4f}", "0"] for i, v in enumerate(base)]
    backwards[10], backwards[11] = backwards[11], backwards[10]
    words = [["words", month(i), f"{v:.4f}", "0"] for i, v in enumerate(base)]
    words[25][2] = "n/a"
    short = [["short", month(i), f"{v:.4f}", "1"]
             for i, v in enumerate(series_values(50.0, np.arange(SHORT), 0.0))]
    tiny = [["tiny", month(i), "5", "0"] for i in range(4)]
    return table + gappy + dupes + backwards + words + short + tiny


@pytest.fixture(scope="session")
def forecast_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("forecast") / "series.csv"
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["series_id", "timestamp", "value", "promo"])
        writer.writerows(rows())
    return path


def ingest_config(path, fill: str = "interpolate") -> dict:
    return {"task": "forecasting", "source": "csv", "train": str(path), "fill": fill,
            "covariate_columns": ["promo"],
            "max_quarantine_fraction": 0.5,
            "forecast": {"horizon": HORIZON, "lookback": LOOKBACK, "seasonality": SEASONALITY,
                         "min_history": 10}}


@pytest.fixture(scope="session")
def forecast_examples(run_stage, forecast_csv):
    properties, outputs = run_stage("ingest", {}, ingest_config(forecast_csv))
    return properties, outputs["examples"]


@pytest.fixture(scope="session")
def forecast_statistics(run_stage, forecast_examples):
    _, outputs = run_stage("statistics", {"examples": forecast_examples[1]}, {})
    return outputs


@pytest.fixture(scope="session")
def forecast_model(run_stage, forecast_examples, forecast_statistics):
    inputs = {"examples": forecast_examples[1], **forecast_statistics}
    properties, outputs = run_stage("train", {**inputs}, {
        "task": "forecasting", "model": "mlp", "epochs": 15, "batch_size": 32,
        "learning_rate": 0.01, "model_options": {"hidden_units": [32], "dropout": 0.0}})
    return properties, outputs["model"]


@pytest.fixture(scope="session")
def forecast_evaluation(run_stage, forecast_examples, forecast_model):
    inputs = {"examples": forecast_examples[1], "model": forecast_model[1]}
    # Theta and ETS fits cost ~0.1-0.5 s a series: test_baselines_and_mase_on_known_series
    # checks them; the stage fixture scores the two that cost nothing.
    properties, outputs = run_stage("evaluate", inputs, {
        "task": "forecasting", "baselines": ["naive", "seasonal_naive"]})
    return properties, outputs["evaluation"]


@pytest.fixture(scope="session")
def forecast_tflite(run_stage, forecast_examples, forecast_model):
    inputs = {"examples": forecast_examples[1], "model": forecast_model[1]}
    properties, outputs = run_stage("quantize", inputs, {
        "task": "forecasting", "variants": ["float32", "int8"],
        "int8_io": "float32", "max_metric_increase": 0.01,
        "representative_examples": 50, "latency_examples": 5})
    return properties, outputs["tflite"]
