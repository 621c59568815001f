"""Forecasting windows: what a forecasting model reads, for every consumer (ingest, training,
evaluate, quantize, the server, `edgepipe forecast`).

A model input is a window of a series' last `lookback` steps, [lookback, 1 + covariates + 1]
float32: the raw value, the raw past covariates, and a mask channel (1: a real step, 0: a
padding step). A series shorter than `lookback` is padded BEFORE its first value with zeros,
mask 0 (contracts/model_inputs.py pads "pre" with 0.0, so a window stored or sent without its
padding gets it there). Clients send raw values ([steps] or [steps, 1 + covariates]); `with_mask`
adds the mask channel of ones, then padding makes the window. The model scales each window by
the mean absolute value of its real steps inside, and answers in the series' own units.

The Examples artifact of a forecasting task holds `forecast.json` (the settings the windows
were cut with) and `series/series.jsonl` (each kept series' values and timestamps, for the
baselines and the MASE scale). Neutral: numpy and the storage helpers only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgepipe.contracts import storage

SETTINGS_FILE = "forecast.json"
SERIES_FILE = "series/series.jsonl"
# In the Evaluation artifact: per test window its forecast, interval, baselines and actuals.
FORECASTS_FILE = "forecasts.json"
SEPARATOR = "@"  # example ids are "<series>@<index of the first forecast step>"


def with_mask(series, channels: int) -> np.ndarray:
    """[steps, channels] float32 of a raw series ([steps] or [steps, channels - 1]): the
    values and covariates, then a mask channel of ones. A series that already has the mask
    channel (an Examples window) is returned as it is."""
    values = np.asarray(series, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] not in (channels - 1, channels):
        raise ValueError(
            f"a forecasting series has shape {list(values.shape)}; the model takes [steps] or "
            f"[steps, {channels - 1}] (the value then {channels - 2} covariate(s)), most recent "
            "step last.")
    if values.shape[1] == channels:
        return values
    return np.concatenate([values, np.ones((len(values), 1), np.float32)], axis=1)


def example_id(series: str, first_forecast_step: int) -> str:
    return f"{series}{SEPARATOR}{first_forecast_step}"


def series_of(example_id: str | bytes) -> str:
    text = example_id.decode() if isinstance(example_id, bytes) else str(example_id)
    return text.rsplit(SEPARATOR, 1)[0]


def horizon_names(horizon: int, quantiles: tuple[float, ...] = ()) -> list[str]:
    """Output names: t+1..t+h, or with quantiles t+1 q0.1, t+1 q0.5, ... (step-major)."""
    steps = [f"t+{step}" for step in range(1, horizon + 1)]
    if not quantiles:
        return steps
    return [f"{step} q{quantile:g}" for step in steps for quantile in quantiles]


def point_forecast(outputs, horizon: int, quantiles) -> np.ndarray:
    """[N, horizon] point forecasts from a model's outputs (the 0.5 quantile with quantiles)."""
    outputs = np.asarray(outputs, np.float64)
    if not quantiles:
        return outputs.reshape(len(outputs), horizon)
    return outputs.reshape(len(outputs), horizon, len(quantiles))[
        :, :, list(quantiles).index(0.5)]


def quantile_forecasts(outputs, horizon: int, quantiles) -> np.ndarray:
    """[N, horizon, quantiles] of a quantile model's outputs."""
    return np.asarray(outputs, np.float64).reshape(len(outputs), horizon, len(quantiles))


def read_settings(examples_dir) -> dict[str, Any]:
    path = storage.join(examples_dir, SETTINGS_FILE)
    try:
        return json.loads(storage.read_text(path))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: these Examples were not written for [pipeline] "
                         "task = \"forecasting\"; re-run ingest with that task.") from None


def read_forecasts(evaluation_dir) -> list[dict[str, Any]]:
    return json.loads(storage.read_text(storage.join(evaluation_dir, FORECASTS_FILE)))


def read_series(examples_dir) -> dict[str, dict[str, Any]]:
    """{series name: {"values": [...], "timestamps": [...], ...}} of every kept series."""
    text = storage.read_text(storage.join(examples_dir, SERIES_FILE))
    records = (json.loads(line) for line in text.splitlines() if line.strip())
    return {record["series"]: record for record in records}


def fill_missing(values, how: str) -> np.ndarray:
    """[steps, columns] with missing steps (NaN) filled per column: "previous" carries the
    last value forward (the first values back), "interpolate" draws lines between known
    values (the ends held flat), "none" leaves them. ValueError for a column with no number."""
    values = np.asarray(values, np.float64)
    if how == "none" or not np.isnan(values).any():
        return values
    filled = values.copy()
    steps = np.arange(len(values))
    for column in range(values.shape[1]):
        known = ~np.isnan(values[:, column])
        if not known.any():
            raise ValueError(f"column {column} has no numeric value")
        if how == "interpolate":
            filled[:, column] = np.interp(steps, steps[known], values[known, column])
            continue
        last = np.where(known, steps, 0)
        np.maximum.accumulate(last, out=last)
        first = int(np.argmax(known))
        last[:first] = first
        filled[:, column] = values[last, column]
    return filled
