"""The evaluate stage's forecasting piece: the model's test forecasts (each series' last
horizon points) scored by sMAPE, MASE, MAE and RMSE, overall, per horizon step and per
series; interval coverage and width with quantiles; the baselines (baselines.py) fitted per
series on the same history and scored on the same windows; the gates.

With `backtest_windows` N (rolling-origin evaluation) the test split holds N windows per
series, one per origin: the overall figures (and the gates) are over all of them, and
`backtest` gives each origin's figures for the model and every baseline.

Gates: the absolute one on sMAPE (`max_smape`) and the relative one against the registry
(gates.py), plus `max_mase` and `beat_baseline` (NOT_BLESSED unless the model's MASE is
below that baseline's). Writes metrics.json, predictions.csv, singled_out.json (the worst
series) and forecasts.json (per series: the forecast, its interval, the baselines' forecasts
and the actuals, which the report draws).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from edgepipe.components.evaluate import baselines, regression
from edgepipe.components.shared import forecast_metrics
from edgepipe.contracts import artifacts, forecast_windows, registry

log = logging.getLogger("edgepipe.evaluate")
METRICS = ("smape", "mase", "mae", "rmse")
SLOW_BASELINES = ("theta", "ets")  # statsmodels fits, ~0.1-1 s a window


def primary(targets, values) -> float:
    """sMAPE of the point forecasts (the median of a quantile model's outputs per step)."""
    targets = np.asarray(targets, np.float64)
    values = np.asarray(values, np.float64).reshape(len(targets), targets.shape[1], -1)
    return float(forecast_metrics.smape_points(targets, np.median(values, axis=2)).mean())


def evaluate(test: dict, values: np.ndarray, examples, feature: str, config,
             target_names: list[str], evaluation_dir, model_dir, bless) -> dict[str, Any]:
    settings = forecast_windows.read_settings(examples.path)
    horizon, quantiles, season = (settings["horizon"], list(settings["quantiles"]),
                                  settings["seasonality"])
    origins = check_origins(settings, config, examples.path)  # before the minutes of fits
    actuals = np.asarray(test["target"], np.float64)
    forecasts = forecast_windows.point_forecast(values, horizon, quantiles)
    regression.check_shape(forecasts, actuals, target_names, model_dir, examples.path)
    series = forecast_windows.read_series(examples.path)
    ids = [value.decode() if isinstance(value, bytes) else str(value) for value in test["id"]]
    names = [forecast_windows.series_of(value) for value in ids]
    starts = [int(value.rsplit(forecast_windows.SEPARATOR, 1)[1]) for value in ids]
    histories = [np.asarray(series[name]["values"][:start]) for name, start in zip(names, starts)]
    scales = [forecast_metrics.seasonal_scale(history, season) for history in histories]
    metrics: dict[str, Any] = {**forecast_metrics.summary(actuals, forecasts, scales),
                               "num_examples": len(actuals), "num_series": len(set(names)),
                               "horizon": horizon, "seasonality": season}
    metrics["per_series"] = forecast_metrics.per_series(ids, actuals, forecasts, scales)
    if quantiles:
        metrics["intervals"] = forecast_metrics.intervals(
            actuals, forecast_windows.quantile_forecasts(values, horizon, quantiles), quantiles)
    baseline_forecasts, metrics["baselines"] = score_baselines(
        config.baselines, histories, actuals, horizon, season, scales)
    backs = [(len(series[name]["values"]) - start) // horizon
             for name, start in zip(names, starts)]
    metrics["backtest"] = backtest(backs, origins, horizon, actuals, forecasts,
                                   baseline_forecasts, scales)
    metrics["blessing"] = blessing(comparable(bless(metrics["smape"]), config, origins),
                                   metrics, config)
    rows = regression.prediction_rows(ids, actuals, forecasts, target_names)
    worst = sorted(metrics["per_series"].items(), key=lambda item: -item[1]["smape"])
    artifacts.write_regression_evaluation(
        evaluation_dir, metrics, {"largest_errors": [
            {"id": name, **scores} for name, scores in worst[:config.singled_out_examples]]},
        rows, target_names)
    artifacts.write_json(artifacts.at(evaluation_dir, forecast_windows.FORECASTS_FILE), [
        {"id": example, "series": name, "actuals": actuals[i].tolist(),
         "forecast": forecasts[i].tolist(),
         **({"quantiles": quantiles, "quantile_forecasts": forecast_windows.quantile_forecasts(
             values[i:i + 1], horizon, quantiles)[0].tolist()} if quantiles else {}),
         "baselines": {name_: values_[i].tolist() for name_, values_ in
                       baseline_forecasts.items()}}
        for i, (example, name) in enumerate(zip(ids, names))])
    return metrics


def check_origins(settings: dict, config, examples_dir) -> int:
    """The backtest origins ingest cut (forecast.json); [evaluate] backtest_windows, when
    given, must be the same (the config loader hands it to ingest)."""
    origins = int(settings.get("backtest_windows", 1))
    if config.backtest_windows is not None and config.backtest_windows != origins:
        raise ValueError(f"[evaluate] backtest_windows = {config.backtest_windows} but the "
                         f"examples in {examples_dir} were cut with {origins} origin(s); run "
                         "the pipeline from its config (the loader passes the setting to "
                         "ingest), or re-run ingest with [forecast] backtest_windows = "
                         f"{config.backtest_windows}.")
    return origins


def comparable(base: dict[str, Any], config, origins: int) -> dict[str, Any]:
    """The relative gate re-runs the registry's version on this run's test windows. A version
    trained with fewer backtest origins trained on this run's earlier test windows: its figure
    there is not an out-of-sample one, so the gate is not applied, and says why."""
    gates = []
    for gate in base["gates"]:
        baseline = gate.get("baseline") or {}
        if gate["name"] == "relative" and gate["applied"] and \
                baseline.get("source") == "re-evaluated":
            version_dir = registry.version_path(config.registry.path,
                                                config.registry.model_name, baseline["version"])
            trained = int(artifacts.read_model_info(version_dir).get("forecast", {}).get(
                "backtest_windows", 1))
            if trained < origins:
                gate = {**gate, "applied": False, "passed": True, "reason": (
                    f"not applied: {baseline['model_name']} v{baseline['version']} was trained "
                    f"with backtest_windows = {trained}, on windows that are test windows of "
                    f"this run's {origins} origins; its sMAPE here ({baseline['smape']:.3f}) "
                    "is not out of sample")}
        gates.append(gate)
    return {**base, "gates": gates, "reason": "; ".join(gate["reason"] for gate in gates)}


def backtest(backs, origins: int, horizon: int, actuals, forecasts, baseline_forecasts,
             scales) -> list[dict[str, Any]]:
    """Per rolling origin, earliest first: its windows' metrics for the model and each
    baseline (each refitted on the history before that origin)."""
    backs, scales = np.asarray(backs), np.asarray(scales, np.float64)

    def scored(values, rows):
        summary = forecast_metrics.summary(actuals[rows], values[rows], scales[rows])
        return {key: summary[key] for key in METRICS}

    table = []
    for back in range(origins, 0, -1):
        rows = np.flatnonzero(backs == back)
        table.append({"origin": origins - back + 1, "steps_before_end": back * horizon,
                      "windows": int(len(rows)), "model": scored(forecasts, rows),
                      "baselines": {name: scored(values, rows)
                                    for name, values in baseline_forecasts.items()}})
    return table


def score_baselines(names, histories, actuals, horizon: int, season: int, scales):
    """({baseline: forecasts [S, h]}, {baseline: its metrics, fallbacks and fit seconds}).
    The statsmodels fits take minutes on a few hundred series: progress is logged."""
    forecasts, scores = {}, {}
    for name in names:
        began = time.perf_counter()
        fitted = []
        every = max(1, len(histories) // 10)
        for done, history in enumerate(histories, start=1):
            fitted.append(baselines.forecast(name, history, horizon, season))
            if name in SLOW_BASELINES and (done % every == 0 or done == len(histories)):
                log.info("evaluate: baseline %s fitted on %d / %d windows (%.0f s)", name,
                         done, len(histories), time.perf_counter() - began)
        forecasts[name] = np.stack([values for values, _ in fitted])
        summary = forecast_metrics.summary(actuals, forecasts[name], scales)
        scores[name] = {**summary, "fell_back_to_naive": sum(fell for _, fell in fitted),
                        "seconds": round(time.perf_counter() - began, 3)}
    return forecasts, scores


def blessing(base: dict[str, Any], metrics: dict[str, Any], config) -> dict[str, Any]:
    """gates.py's verdict on sMAPE, with the max_mase and beat_baseline gates added."""
    gates = list(base["gates"])
    mase = metrics["mase"]
    if config.max_mase is not None:
        passed = bool(mase <= config.max_mase)
        gates.append({"name": "max_mase", "applied": True, "passed": passed,
                      "reason": f"mase {mase:.4f} {'<=' if passed else '>'} threshold "
                                f"{config.max_mase:.4f}"})
    if config.beat_baseline:
        other = metrics["baselines"][config.beat_baseline]["mase"]
        passed = bool(mase < other)
        gates.append({"name": "beat_baseline", "applied": True, "passed": passed,
                      "reason": f"mase {mase:.4f} {'beats' if passed else 'does not beat'} "
                                f"{config.beat_baseline}'s {other:.4f}"})
    failed = [gate for gate in gates if gate["applied"] and not gate["passed"]]
    reason = "; ".join(gate["reason"] for gate in (failed or gates) if gate["applied"])
    return {"blessed": not failed, "reason": reason or base["reason"], "gates": gates}


def properties(metrics: dict[str, Any]) -> dict[str, Any]:
    """The run summary's view: the metrics overall and per step, and each baseline's."""
    keys = (*METRICS, "per_step", "num_examples", "num_series", "backtest")
    return {**{key: metrics[key] for key in keys},
            "baselines": {name: {key: scores[key] for key in METRICS}
                          for name, scores in metrics["baselines"].items()},
            **({"intervals": {key: metrics["intervals"][key] for key in (
                "interval", "coverage", "width", "relative_width")}}
               if "intervals" in metrics else {})}


def gate_thresholds(config) -> tuple[float | None, float]:
    return config.max_smape, config.max_smape_increase


def extra(examples, model_dir, names, feature, evaluation_dir, config, predict) -> dict:
    return {}
