"""The evaluate stage's regression piece: MAE, RMSE and R² of the served values against the
targets, overall, per target column and per slice; one row per prediction; the largest errors
singled out (the regression counterpart of the low-confidence gallery).

Pure numpy on (targets [N, k], values [N, k]), in the data's own units (the model returns
them: components/shared/task_heads.py). R² follows scikit-learn's r2_score (1 - SSE/SST per
target, averaged uniformly over the targets; a constant target scores 0 unless predicted
exactly).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.components.evaluate import slices
from edgepipe.components.evaluate.metrics import slice_groups
from edgepipe.contracts import artifacts


def errors(targets, values) -> dict[str, float]:
    """{"mae", "rmse", "r2"} over every target of every example."""
    targets = np.asarray(targets, np.float64).reshape(len(targets), -1)
    values = np.asarray(values, np.float64).reshape(targets.shape)
    difference = values - targets
    squares = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
    residual = (difference ** 2).sum(axis=0)
    r2 = np.where(squares > 0, 1.0 - residual / np.where(squares > 0, squares, 1.0),
                  np.where(residual > 0, 0.0, 1.0))
    return {"mae": float(np.abs(difference).mean()),
            "rmse": float(np.sqrt((difference ** 2).mean())),
            "r2": float(r2.mean()) if len(targets) > 1 else float("nan")}


def primary(targets, values) -> float:
    """The task's primary metric (MAE): what the gates and the deploy policy compare."""
    return errors(targets, values)["mae"]


def check_shape(values, targets, target_names, model_dir, examples) -> None:
    if values.shape != targets.shape:
        raise ValueError(
            f"{model_dir / artifacts.SAVED_MODEL}: the model returned values of shape "
            f"{values.shape}, expected {targets.shape} for the targets {target_names} of "
            f"{examples}. Were model and examples built from the same data?")


def slice_errors(values_of_slice, targets, predicted, buckets: int,
                 description: str) -> dict[str, Any]:
    """MAE, RMSE and R² per value (or quantile bucket) of a slice feature."""
    groups, kind = slice_groups(values_of_slice, buckets)
    rows = [{"value": name, "num_examples": int(members.sum()),
             **errors(targets[members], predicted[members])}
            for name, members in groups if members.any()]
    return {"description": description, "grouping": kind, "rows": rows}


def prediction_rows(ids, targets, values, target_names) -> list[dict[str, Any]]:
    """One row per example: id, its targets, the predictions and the absolute error (mean
    over the targets)."""
    absolute = np.abs(values - targets).mean(axis=1)
    return [{"id": record_id.decode() if isinstance(record_id, bytes) else str(record_id),
             "target": [float(v) for v in target], "prediction": [float(v) for v in value],
             "abs_error": float(error)}
            for record_id, target, value, error in zip(ids, targets, values, absolute)]


def evaluate(test: dict, values: np.ndarray, examples, feature: str, config,
             target_names: list[str], evaluation_dir, model_dir, bless) -> dict[str, Any]:
    """metrics.json, singled_out.json ("largest_errors") and predictions.csv of a regression
    model, with the blessing `bless(mae)` gives; returns the metrics."""
    targets = np.asarray(test["target"], np.float64)
    check_shape(values, targets, target_names, model_dir, examples.path)
    values = np.asarray(values, np.float64)
    metrics: dict[str, Any] = {**errors(targets, values), "num_examples": len(targets)}
    metrics["per_target"] = {name: errors(targets[:, [index]], values[:, [index]])
                             for index, name in enumerate(target_names)}
    metrics["slices"] = {
        name: slice_errors(slice_values, targets, values, config.slice_buckets, description)
        for name, (slice_values, description)
        in slices.slice_features(examples, feature, test, config).items()}
    metrics["slices"]["target"] = slice_errors(
        targets.mean(axis=1), targets, values, config.slice_buckets,
        "the true target (mean over the targets): where in its range the model errs")
    metrics["blessing"] = bless(metrics["mae"])
    rows = prediction_rows(test["id"], targets, values, target_names)
    largest = sorted(rows, key=lambda row: (-row["abs_error"], row["id"]))
    artifacts.write_regression_evaluation(
        evaluation_dir, metrics, {"largest_errors": largest[:config.singled_out_examples]},
        rows, target_names)
    return metrics


def properties(metrics: dict[str, Any]) -> dict[str, Any]:
    """The run summary's view of the metrics."""
    return {key: metrics[key] for key in ("mae", "rmse", "r2", "num_examples")}


def gate_thresholds(config) -> tuple[float | None, float]:
    """(the absolute gate's maximum MAE or None, the relative gate's allowed MAE increase as
    a fraction of the baseline's)."""
    return config.max_mae, config.max_mae_increase


def extra(examples, model_dir, names, feature, evaluation_dir, config, predict) -> dict:
    return {}  # no labelling queue: it ranks class probabilities
