"""Forecast errors, as the M4 competition defines them. Pure numpy on (actuals [S, h],
forecasts [S, h]) with one row per series' test window.

sMAPE = mean of 200 |F - A| / (|A| + |F|) (0 where both are 0), in percent, 0..200.
MASE = per series, the MAE of its forecast over its in-sample seasonal-naive MAE (the mean of
|y_t - y_{t-m}| over its history), then averaged over series. A series whose in-sample scale
is 0 (a constant history) has no MASE: it is left out of the mean, and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def smape_points(actuals, forecasts) -> np.ndarray:
    actuals, forecasts = np.asarray(actuals, np.float64), np.asarray(forecasts, np.float64)
    denominator = np.abs(actuals) + np.abs(forecasts)
    return np.where(denominator > 0,
                    200.0 * np.abs(forecasts - actuals) / np.where(denominator > 0,
                                                                   denominator, 1.0), 0.0)


def seasonal_scale(history, season: int) -> float:
    """The in-sample MAE of the seasonal naive forecast (naive when the history is shorter
    than a season and one step)."""
    history = np.asarray(history, np.float64)
    lag = season if len(history) > season else 1
    if len(history) <= lag:
        return float("nan")
    return float(np.abs(history[lag:] - history[:-lag]).mean())


def scaled_errors(actuals, forecasts, scales) -> np.ndarray:
    """[S, h] absolute errors over each series' scale (NaN where the scale is 0)."""
    scales = np.asarray(scales, np.float64)[:, None]
    usable = np.isfinite(scales) & (scales > 0)
    return np.where(usable, np.abs(np.asarray(forecasts) - np.asarray(actuals))
                    / np.where(usable, scales, 1.0), np.nan)


def summary(actuals, forecasts, scales) -> dict[str, Any]:
    """{"smape", "mase", "mae", "rmse"} over every series and step, and "per_step" lists."""
    actuals, forecasts = np.asarray(actuals, np.float64), np.asarray(forecasts, np.float64)
    smape = smape_points(actuals, forecasts)
    scaled = scaled_errors(actuals, forecasts, scales)
    errors = forecasts - actuals
    with np.errstate(invalid="ignore"):
        per_series_mase = np.nanmean(scaled, axis=1) if scaled.size else scaled
    return {
        "smape": float(smape.mean()),
        "mase": _nanmean(per_series_mase),
        "mae": float(np.abs(errors).mean()),
        "rmse": float(np.sqrt((errors ** 2).mean())),
        "per_step": {
            "smape": smape.mean(axis=0).tolist(),
            "mase": [_nanmean(column) for column in scaled.T],
            "mae": np.abs(errors).mean(axis=0).tolist(),
            "rmse": np.sqrt((errors ** 2).mean(axis=0)).tolist(),
        },
        "series_without_scale": int((~np.isfinite(per_series_mase)).sum()),
    }


def per_series(names, actuals, forecasts, scales) -> dict[str, dict[str, float]]:
    smape = smape_points(actuals, forecasts).mean(axis=1)
    mase = scaled_errors(actuals, forecasts, scales)
    mae = np.abs(np.asarray(forecasts) - np.asarray(actuals)).mean(axis=1)
    return {name: {"smape": float(smape[i]),
                   "mase": float(mase[i].mean()) if np.isfinite(mase[i]).all() else None,
                   "mae": float(mae[i])} for i, name in enumerate(names)}


def intervals(actuals, quantile_forecasts, quantiles) -> dict[str, Any]:
    """Coverage and width of the interval between the outermost quantiles, and the share of
    actuals below each quantile (calibration: ideally the quantile itself)."""
    actuals = np.asarray(actuals, np.float64)
    lower, upper = quantile_forecasts[:, :, 0], quantile_forecasts[:, :, -1]
    inside = (actuals >= lower) & (actuals <= upper)
    level = np.abs(actuals).mean(axis=1, keepdims=True)
    width = upper - lower
    return {
        "interval": [quantiles[0], quantiles[-1]],
        "nominal_coverage": quantiles[-1] - quantiles[0],
        "coverage": float(inside.mean()),
        "width": float(width.mean()),
        "relative_width": float((width / np.where(level > 0, level, 1.0)).mean()),
        "coverage_per_step": inside.mean(axis=0).tolist(),
        "share_below": {f"{q:g}": float((actuals < quantile_forecasts[:, :, i]).mean())
                        for i, q in enumerate(quantiles)},
    }


def _nanmean(values) -> float:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
