"""`edgepipe forecast CONFIG --csv FILE -o OUT.csv`: forecast every series of a CSV file with
the pushed model (the registry's newest version of the config's model), on LiteRT.

The CSV is long format, with the columns of the config's [ingest] section (series_column,
time_column, target_column, covariate_columns). Each series' rows are ordered by time
(numbers numerically, other timestamps as ISO 8601 text), its last `lookback` values (and
covariates) become the window, padded when shorter (contracts/forecast_windows.py), and the
output CSV has one row per series and horizon step: series, step, forecast, and with
quantiles one column per quantile. An empty or non-numeric value is repaired by the config's
`[ingest] fill` ("previous" or "interpolate", as ingest repairs it; the command says how many
on stderr) or, with fill = "none", refused naming its line; a duplicate timestamp is always an
error naming the file and line.
"""

from __future__ import annotations

import csv
import math
import pathlib
from typing import Any

import numpy as np

from edgepipe.contracts import artifacts, forecast_windows, litert, model_inputs, registry


def read_series(path: pathlib.Path, columns: dict[str, Any],
                fill: str = "none") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """({series: [steps, 1 + covariates] in time order}, what was repaired) of a long-format
    CSV file. An empty or non-numeric value is repaired by the config's [ingest] fill
    ("previous", "interpolate": forecast_windows.fill_missing, as ingest does) and counted,
    or with fill = "none" refused, naming its line."""
    wanted = [columns["target"], *columns["covariates"]]
    rows: dict[str, list] = {}
    missing: dict[str, list[int]] = {}
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        absent = [name for name in (columns["series"], columns["time"], *wanted)
                  if name not in (reader.fieldnames or [])]
        if absent:
            raise ValueError(f"{path}: no column(s) {absent}; the header has "
                             f"{reader.fieldnames}. It needs the columns the config's [ingest] "
                             "names (series_column, time_column, target_column, "
                             "covariate_columns).")
        for row in reader:
            values = [_number(row[name]) for name in wanted]
            for name, value in zip(wanted, values):
                if math.isnan(value) and fill == "none":
                    raise ValueError(
                        f"{path}:{reader.line_num}: column {name!r} holds "
                        f"{str(row[name])[:40]!r}, not a finite number. Fill in the value or "
                        "remove the line, or set [ingest] fill = \"previous\" or "
                        "\"interpolate\" in the config to repair it as ingest does.")
                if math.isnan(value):
                    missing.setdefault(row[columns["series"]], []).append(reader.line_num)
            rows.setdefault(row[columns["series"]], []).append(
                (_time_key(row[columns["time"]]), reader.line_num, values))
    series = {}
    for name, entries in rows.items():
        entries.sort(key=lambda entry: entry[:2])
        for before, after in zip(entries, entries[1:]):
            if before[0] == after[0]:
                raise ValueError(f"{path}:{after[1]}: series {name!r} has timestamp "
                                 f"{after[0][1]!r} twice (also line {before[1]}).")
        values = np.asarray([values for _, _, values in entries], np.float64)
        try:
            values = forecast_windows.fill_missing(values, fill)
        except ValueError as error:
            raise ValueError(f"{path}: series {name!r}: {error}, nothing to fill its empty "
                             "values from; give it values or leave the series out.") from None
        series[name] = values.astype(np.float32)
    lines = sorted(line for found in missing.values() for line in found)
    return series, {"fill": fill, "values": len(lines), "series": len(missing),
                    "lines": lines}


def _number(text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _time_key(text: str) -> tuple:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text.strip())


def forecast(config, csv_path: pathlib.Path, output_path: pathlib.Path,
             columns: dict[str, Any], fill: str = "none") -> dict[str, Any]:
    """Write the forecasts of every series to `output_path` with the config's newest pushed
    model; returns what was done."""
    from ai_edge_litert.interpreter import Interpreter

    folder, version = registry.pushed_version(config)
    model_name = config.registry.model_name
    model_json = artifacts.read_model_info(folder)
    settings = model_json.get("forecast")
    if not settings:
        raise ValueError(f"{model_name} v{version} is a {model_json.get('task')} model, not "
                         "a forecasting one.")
    series, repaired = read_series(csv_path, columns, fill)
    names = sorted(series)
    batch = model_inputs.prepare(model_json, [series[name] for name in names])
    interpreter = Interpreter(model_content=(folder / registry.TFLITE_MODEL).read_bytes())
    interpreter.allocate_tensors()
    outputs = litert.invoke_each(interpreter, batch)
    horizon, quantiles = settings["horizon"], list(settings["quantiles"])
    points = forecast_windows.point_forecast(outputs, horizon, quantiles)
    grid = (forecast_windows.quantile_forecasts(outputs, horizon, quantiles)
            if quantiles else None)
    header = ["series", "step", "forecast", *(f"q{q:g}" for q in quantiles)]
    with open(output_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for row, name in enumerate(names):
            for step in range(horizon):
                writer.writerow([name, step + 1, f"{points[row, step]:.9g}",
                                 *(f"{grid[row, step, i]:.9g}" for i in range(len(quantiles)))])
    return {"model": model_name, "version": version, "series": len(names),
            "horizon": horizon, "output": str(output_path), "repaired": repaired}
