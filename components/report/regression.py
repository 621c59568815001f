"""The report's regression piece: the target's distribution, MAE/RMSE/R² overall, per target
and per slice, predicted against actual, the residual histogram and the largest errors with
their inputs (the counterpart of a classifier's low-confidence gallery)."""

from __future__ import annotations

import csv
import pathlib
from typing import Any

import numpy as np

from edgepipe.components.report import plots, plots_regression, sections
from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts

TEMPLATE = "regression.html"
SHOWN_VALUES = 8  # input values a largest-error row shows before "…"


def sections_of(inputs, model_dir, evaluation_dir: pathlib.Path, model_info: dict, feature: str,
                config, test: dict) -> dict[str, Any]:
    names = list(model_info["target_names"])
    examples = inputs["examples"].path
    evaluation = _evaluation(evaluation_dir, names)
    largest = _largest_errors(evaluation_dir, test, feature, config.low_confidence_examples)
    return {
        "data": _data(inputs["examples"], inputs["statistics"].path, feature, names, examples),
        "evaluation": evaluation,
        "galleries": {"largest_errors": largest},
        "semi_supervised": None,
        "cards": [
            {"label": "Test MAE", "value": f"{evaluation['mae']:.4g}",
             "note": f"{evaluation['num_examples']} test examples, RMSE "
                     f"{evaluation['rmse']:.4g}, in the units of {', '.join(names)}"},
            {"label": "R²", "value": f"{evaluation['r2']:.3f}",
             "note": "1 is perfect; 0 predicts no better than the mean"},
        ],
    }


def _data(examples, statistics_dir, feature: str, names: list[str], examples_dir) -> dict:
    statistics = artifacts.read_statistics(statistics_dir)["splits"]
    histograms = {split: statistics[split]["features"]["target"]["columns"][names[0]]["histogram"]
                  for split in sections.SPLITS if split in statistics}
    return {
        **sections._ingest_counts(examples),
        "feature": feature,
        "quarantine_reasons": sections._quarantine(artifacts.read_quarantine(examples.path)),
        "anomalies": artifacts.read_anomalies(statistics_dir),
        "label_figure": plots_regression.target_histograms(histograms, names[0]),
        "label_caption": f"Distribution of the target {names[0]!r} within each split."
                         + (f" ({len(names) - 1} more targets in statistics.json.)"
                            if len(names) > 1 else ""),
        "target_statistics": [{"split": split, "name": name,
                               **{key: statistics[split]["features"]["target"]["columns"][name][key]
                                  for key in ("count", "min", "max", "mean", "std")}}
                              for split in sections.SPLITS if split in statistics
                              for name in names],
    }


def _predictions(evaluation_dir: pathlib.Path, names: list[str]):
    """(targets [N, k], predictions [N, k]) from predictions.csv."""
    with open(evaluation_dir / artifacts.PREDICTIONS, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    targets = np.array([[float(row[name]) for name in names] for row in rows]).reshape(-1, len(names))
    predicted = np.array([[float(row[f"predicted_{name}"]) for name in names]
                          for row in rows]).reshape(-1, len(names))
    return targets, predicted


def _evaluation(evaluation_dir: pathlib.Path, names: list[str]) -> dict[str, Any]:
    metrics = artifacts.read_metrics(evaluation_dir)
    targets, predicted = _predictions(evaluation_dir, names)
    return {
        "mae": float(metrics["mae"]), "rmse": float(metrics["rmse"]), "r2": float(metrics["r2"]),
        "num_examples": int(metrics["num_examples"]),
        "per_target": [{"name": name, **metrics["per_target"][name]} for name in names],
        "slices": metrics["slices"],
        "gates": metrics["blessing"]["gates"],
        "scatter_figure": plots_regression.predicted_vs_actual(targets, predicted, names),
        "residual_figure": plots_regression.residual_histogram(targets, predicted, names),
    }


def _largest_errors(evaluation_dir: pathlib.Path, test: dict, feature: str,
                    count: int) -> dict[str, Any]:
    singled_out = artifacts.read_singled_out(evaluation_dir).get("largest_errors", [])
    position = {str(record_id): index for index, record_id in enumerate(test["id"])}
    items = []
    for rank, row in enumerate(singled_out[:count], start=1):
        if row["id"] not in position:
            raise ValueError(f"{evaluation_dir / artifacts.SINGLED_OUT}: id {row['id']!r} has no "
                             "record in the test split; the evaluation and the examples do not "
                             "match.")
        value = test[feature][position[row["id"]]]
        items.append({"rank": rank, "id": row["id"], "abs_error": float(row["abs_error"]),
                      "target": ", ".join(f"{v:.4g}" for v in row["target"]),
                      "prediction": ", ".join(f"{v:.4g}" for v in row["prediction"]),
                      "input": _input_text(value, feature), "value": value})
    figure = ""
    if items and feature == "image":
        figure = plots.image_grid(np.stack([item["value"] for item in items]),
                                  [f"#{item['rank']} err {item['abs_error']:.3g}\ntrue "
                                   f"{item['target']}\npred {item['prediction']}"
                                   for item in items], columns=min(6, len(items)))
    for item in items:
        del item["value"]
    return {"items": items, "figure": figure}


def _input_text(value, feature: str) -> str:
    """The example's input as a person reads it: a table row's values, a series' first
    values, a text's first characters (images are drawn instead)."""
    if feature == "text":
        return sections._snippet(value)
    if feature == "image":
        return f"image {'×'.join(map(str, np.shape(value)))}"
    flat = np.asarray(value, np.float64).reshape(-1)
    shown = ", ".join(f"{v:.4g}" for v in flat[:SHOWN_VALUES])
    return shown + (f", … ({len(flat)} values)" if len(flat) > SHOWN_VALUES else "")


def summary(page: dict[str, Any]) -> dict[str, Any]:
    """summary.json's task fields."""
    evaluation = page["evaluation"]
    return {"mae": evaluation["mae"], "rmse": evaluation["rmse"], "r2": evaluation["r2"],
            "num_examples": evaluation["num_examples"], "slices": evaluation["slices"],
            "largest_error_ids": [item["id"] for item in
                                  page["galleries"]["largest_errors"]["items"]]}
