"""The report's forecasting piece: the series read, kept, repaired and quarantined; sMAPE,
MASE, MAE and RMSE beside each baseline's; error by horizon step; the distribution of
per-series errors; the best, a typical and the worst series drawn with history, forecast,
interval and actuals (the counterpart of a classifier's low-confidence gallery)."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from edgepipe.components.report import plots_forecasting, sections
from edgepipe.contracts import artifacts, forecast_windows

TEMPLATE = "forecasting.html"
METRICS = ("smape", "mase", "mae", "rmse")


def sections_of(inputs, model_dir, evaluation_dir: pathlib.Path, model_info: dict, feature: str,
                config, test: dict) -> dict[str, Any]:
    examples = inputs["examples"]
    metrics = artifacts.read_metrics(evaluation_dir)
    evaluation = _evaluation(metrics, examples.path, evaluation_dir)
    return {
        "data": _data(examples, inputs["statistics"].path, feature),
        "evaluation": evaluation,
        "galleries": {},
        "semi_supervised": None,
        "cards": [
            {"label": "Test sMAPE", "value": f"{metrics['smape']:.3f}",
             "note": f"{metrics['num_series']} series, horizon {metrics['horizon']}; "
                     f"Theta {_baseline(metrics, 'theta', 'smape')}"},
            {"label": "MASE", "value": f"{metrics['mase']:.4f}",
             "note": f"seasonal naive {_baseline(metrics, 'seasonal_naive', 'mase')}; "
                     "below 1 beats it in sample"},
        ],
    }


def _baseline(metrics: dict, name: str, key: str) -> str:
    scores = metrics["baselines"].get(name)
    return f"{scores[key]:.4g}" if scores else "not computed"


def _data(examples, statistics_dir, feature: str) -> dict[str, Any]:
    properties = examples.properties
    return {
        **sections._ingest_counts(examples),
        "feature": feature,
        "quarantine_reasons": sections._quarantine(artifacts.read_quarantine(examples.path)),
        "anomalies": artifacts.read_anomalies(statistics_dir),
        "label_figure": "", "label_caption": "",
        "series_counts": properties.get("series", {}),
        "quarantined_series": properties.get("quarantined", {}).get("series", {}),
        "repaired_series": properties.get("repaired", {}),
        "settings": forecast_windows.read_settings(examples.path),
    }


def _evaluation(metrics: dict, examples_dir, evaluation_dir) -> dict[str, Any]:
    rows = [{"name": "model", **{key: metrics[key] for key in METRICS}}] + [
        {"name": name, **{key: scores[key] for key in METRICS},
         "fell_back": scores["fell_back_to_naive"]}
        for name, scores in metrics["baselines"].items()]
    per_step = {"model": metrics["per_step"]["smape"], **{
        name: scores["per_step"]["smape"] for name, scores in metrics["baselines"].items()}}
    per_series = metrics["per_series"]
    return {
        **{key: metrics[key] for key in (*METRICS, "num_examples", "num_series", "horizon",
                                         "seasonality")},
        "table": rows, "gates": metrics["blessing"]["gates"],
        "intervals": metrics.get("intervals"), "backtest": metrics.get("backtest", []),
        "step_figure": plots_forecasting.error_by_step(per_step, "sMAPE"),
        "series_figure": plots_forecasting.per_series_histogram(
            [scores["smape"] for scores in per_series.values()], "sMAPE"),
        "panels_figure": _panels(per_series, examples_dir, evaluation_dir),
    }


def _panels(per_series: dict, examples_dir, evaluation_dir) -> str:
    """The best, a typical (median) and the worst series by sMAPE."""
    ranked = sorted(per_series, key=lambda name: per_series[name]["smape"])
    if not ranked:
        return ""
    chosen = {"best": ranked[0], "typical": ranked[len(ranked) // 2], "worst": ranked[-1]}
    forecasts = {row["id"]: row for row in forecast_windows.read_forecasts(evaluation_dir)}
    series = forecast_windows.read_series(examples_dir)
    panels = []
    for label, example in chosen.items():
        row = forecasts[example]
        start = int(example.rsplit(forecast_windows.SEPARATOR, 1)[1])
        quantiles = np.asarray(row.get("quantile_forecasts") or [], np.float64)
        panels.append({
            "label": label, "series": row["series"], "smape": per_series[example]["smape"],
            "history": series[row["series"]]["values"][:start], "actuals": row["actuals"],
            "forecast": row["forecast"],
            "lower": quantiles[:, 0] if quantiles.size else None,
            "upper": quantiles[:, -1] if quantiles.size else None,
            "seasonal_naive": row["baselines"].get("seasonal_naive")})
    return plots_forecasting.series_panels(panels)


def summary(page: dict[str, Any]) -> dict[str, Any]:
    evaluation = page["evaluation"]
    return {**{key: evaluation[key] for key in (*METRICS, "num_series", "horizon")},
            "backtest_origins": max(1, len(evaluation["backtest"])),
            "baselines": {row["name"]: {key: row[key] for key in METRICS}
                          for row in evaluation["table"][1:]}}
