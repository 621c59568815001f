"""The report's forecasting figures: a few series with history, forecast, interval, the
seasonal naive forecast and the actuals; error per horizon step beside the baselines'; the
distribution of per-series sMAPE. Same conventions as plots.py (Agg canvas, base64 PNG)."""

from __future__ import annotations

import numpy as np

from edgepipe.components.report.plots import _new_figure, _to_base64_png

SHOWN_HISTORY = 48  # history steps drawn before each forecast


def series_panels(panels: list[dict]) -> str:
    """One panel per series: its last history steps, the actuals of the test window, the
    model's forecast (and interval) and seasonal naive's, titled with the series' sMAPE."""
    figure = _new_figure(4.4 * len(panels), 3.4)
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        history = np.asarray(panel["history"][-SHOWN_HISTORY:], np.float64)
        start = len(history)
        steps = np.arange(start, start + len(panel["actuals"]))
        axes.plot(np.arange(start), history, color="#5b6472", linewidth=1, label="history")
        axes.plot(steps, panel["actuals"], color="#111111", marker="o", markersize=3,
                  linewidth=1, label="actual")
        axes.plot(steps, panel["forecast"], color="#1f5fbf", marker="o", markersize=3,
                  linewidth=1.5, label="forecast")
        if panel.get("lower") is not None:
            axes.fill_between(steps, panel["lower"], panel["upper"], color="#1f5fbf",
                              alpha=0.2, label="interval")
        if panel.get("seasonal_naive") is not None:
            axes.plot(steps, panel["seasonal_naive"], color="#d62728", linestyle="--",
                      linewidth=1, label="seasonal naive")
        axes.set_title(f"{panel['label']}: {panel['series']} (sMAPE {panel['smape']:.2f})",
                       fontsize=9)
        axes.grid(alpha=0.3)
        if index == 0:
            axes.legend(fontsize=7)
    return _to_base64_png(figure)


def error_by_step(per_step: dict[str, list[float]], metric: str) -> str:
    """`metric` per horizon step for the model and each baseline."""
    figure = _new_figure(6.0, 3.4)
    axes = figure.add_subplot(1, 1, 1)
    for name, values in per_step.items():
        axes.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3,
                  linewidth=2.0 if name == "model" else 1.0, label=name)
    axes.set_xlabel("horizon step")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return _to_base64_png(figure)


def per_series_histogram(values: list[float], metric: str) -> str:
    figure = _new_figure(6.0, 3.2)
    axes = figure.add_subplot(1, 1, 1)
    axes.hist(values, bins=min(30, max(5, len(values) // 3)), color="#2ca02c", alpha=0.8)
    axes.set_xlabel(f"{metric} of a series' test window")
    axes.set_ylabel("series")
    return _to_base64_png(figure)
