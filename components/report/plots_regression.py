"""The report's regression figures: predicted against actual, the residual histogram, the
target's distribution per split. Same conventions as plots.py (Agg canvas, base64 PNG)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgepipe.components.report.plots import _new_figure, _split_color, _to_base64_png


def predicted_vs_actual(targets: np.ndarray, predictions: np.ndarray,
                        names: Sequence[str]) -> str:
    """One scatter per target: prediction against truth, with the diagonal of perfect
    predictions."""
    figure = _new_figure(min(4.2 * len(names), 12), 4.0)
    for index, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), index + 1)
        actual, predicted = targets[:, index], predictions[:, index]
        axes.scatter(actual, predicted, s=10, alpha=0.6, color="#1f5fbf", edgecolors="none")
        low = float(min(actual.min(), predicted.min()))
        high = float(max(actual.max(), predicted.max()))
        axes.plot([low, high], [low, high], color="#5b6472", linestyle=":", linewidth=1)
        axes.set_xlabel(f"actual {name}")
        axes.set_ylabel(f"predicted {name}")
        axes.grid(alpha=0.3)
    return _to_base64_png(figure)


def residual_histogram(targets: np.ndarray, predictions: np.ndarray,
                       names: Sequence[str], bins: int = 30) -> str:
    """Histogram of prediction - actual per target: centred on 0 for an unbiased model."""
    figure = _new_figure(min(4.2 * len(names), 12), 3.2)
    for index, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), index + 1)
        residuals = predictions[:, index] - targets[:, index]
        axes.hist(residuals, bins=bins, color="#2ca02c", alpha=0.8)
        axes.axvline(0.0, color="#5b6472", linestyle=":", linewidth=1)
        axes.set_xlabel(f"residual (predicted - actual {name})")
        axes.set_ylabel("test examples")
    return _to_base64_png(figure)


def target_histograms(histograms: dict[str, dict[str, list[float]]], name: str) -> str:
    """The target's distribution per split (share of each split per bin)."""
    figure = _new_figure(8, 3.2)
    axes = figure.add_subplot()
    for split, histogram in histograms.items():
        edges, counts = np.asarray(histogram["edges"]), np.asarray(histogram["counts"], float)
        if not len(counts) or not counts.sum():
            continue
        centers = (edges[:-1] + edges[1:]) / 2
        axes.step(centers, counts / counts.sum(), where="mid", label=split,
                  color=_split_color(split))
    axes.set_xlabel(name)
    axes.set_ylabel("share of the split")
    axes.legend()
    axes.grid(alpha=0.3)
    return _to_base64_png(figure)


def variant_errors(variants: Sequence[dict], keras_value: float, metric: str) -> str:
    """Size against the error metric per TFLite variant; the dotted line is Keras."""
    figure = _new_figure(6.5, 3.6)
    axes = figure.add_subplot()
    for variant in variants:
        axes.scatter(variant["size_bytes"] / 1024, variant[metric], s=30)
        axes.annotate(variant["name"], (variant["size_bytes"] / 1024, variant[metric]),
                      textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.axhline(keras_value, color="#5b6472", linestyle=":", linewidth=1)
    axes.set_xlabel("size (KB)")
    axes.set_ylabel(f"test {metric.upper()}")
    axes.grid(alpha=0.3)
    return _to_base64_png(figure)
