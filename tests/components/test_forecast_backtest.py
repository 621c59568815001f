"""Rolling-origin evaluation (`[evaluate] backtest_windows = N`): the last N horizons of each
series are N test windows cut in the Beam ingest, nothing of them is trained on, and evaluate
scores the model and every baseline per origin and over all of them."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, forecast_windows

from tests.forecast_fixtures import GOOD, HORIZON, LENGTH, ingest_config

REPO = pathlib.Path(__file__).resolve().parents[2]
FERTILITY = REPO / "configs" / "fertility_forecasting.toml"
ORIGINS = 2


@pytest.fixture(scope="module")
def backtest_examples(run_stage, forecast_csv):
    config = ingest_config(forecast_csv)
    config["forecast"] = {**config["forecast"], "backtest_windows": ORIGINS}
    properties, outputs = run_stage("ingest", {}, config)
    return properties, outputs["examples"]


def test_the_windows_of_every_origin_exist_and_train_holds_no_test_point(backtest_examples):
    properties, examples = backtest_examples
    # "short" (11 points) is below (2 + 2) x 3 + 1 = 13 now, "tiny" (4) as before
    assert properties["quarantined"]["series"] == {"tiny": "too_short", "short": "too_short"}
    kept = GOOD + 4
    assert properties["splits"]["test"] == ORIGINS * kept
    assert properties["splits"]["validation"] == kept
    assert properties["splits"]["train"] == (LENGTH - (ORIGINS + 2) * HORIZON) * kept
    series = forecast_windows.read_series(examples.path)
    splits = {split: examples_io.load_numpy(examples.path, split)
              for split in ("train", "validation", "test")}

    def positions(split):  # per series, the series positions of each window's targets
        found: dict = {}
        for example in splits[split]["id"]:
            name = forecast_windows.series_of(example)
            start = int(str(example).rsplit(forecast_windows.SEPARATOR, 1)[1])
            found.setdefault(name, []).append(set(range(start, start + HORIZON)))
        return found

    test, validation, train = positions("test"), positions("validation"), positions("train")
    for name, record in series.items():
        length = len(record["values"])
        starts = sorted(min(window) for window in test[name])
        assert starts == [length - ORIGINS * HORIZON, length - HORIZON], name
        tested = set().union(*test[name])
        assert tested == set(range(length - ORIGINS * HORIZON, length))
        assert min(validation[name][0]) == length - (ORIGINS + 1) * HORIZON
        trained = set().union(*train[name])
        assert not trained & tested and not trained & validation[name][0], name
        assert max(trained) == length - (ORIGINS + 1) * HORIZON - 1
    # each test target is the series' own values at those positions
    row = 0
    example = str(splits["test"]["id"][row])
    name, start = forecast_windows.series_of(example), int(example.rsplit("@", 1)[1])
    assert np.allclose(splits["test"]["target"][row],
                       series[name]["values"][start:start + HORIZON], rtol=1e-5)


@pytest.fixture(scope="module")
def backtest_model(run_stage, backtest_examples, forecast_statistics):
    _, trained = run_stage("train", {"examples": backtest_examples[1], **forecast_statistics}, {
        "task": "forecasting", "model": "mlp", "epochs": 3, "batch_size": 32,
        "learning_rate": 0.01, "model_options": {"hidden_units": [16], "dropout": 0.0}})
    return trained


def test_evaluate_scores_each_origin_for_the_model_and_every_baseline(
        run_stage, backtest_examples, backtest_model):
    properties, examples = backtest_examples
    trained = backtest_model
    scored, outputs = run_stage("evaluate", {"examples": examples, "model": trained["model"]}, {
        "task": "forecasting", "baselines": ["naive", "seasonal_naive"],
        "backtest_windows": ORIGINS, "beat_baseline": "naive"})
    backtest = scored["backtest"]
    assert [origin["origin"] for origin in backtest] == [1, 2]
    assert [origin["steps_before_end"] for origin in backtest] == [2 * HORIZON, HORIZON]
    kept = GOOD + 4
    assert [origin["windows"] for origin in backtest] == [kept, kept]
    for origin in backtest:
        assert set(origin["model"]) == {"smape", "mase", "mae", "rmse"}
        assert set(origin["baselines"]) == {"naive", "seasonal_naive"}
    # the overall figures are over both origins' windows: the mean of equal-sized origins
    assert scored["num_examples"] == 2 * kept
    for key in ("smape", "mae"):
        assert scored[key] == pytest.approx(np.mean([o["model"][key] for o in backtest]))
        assert scored["baselines"]["naive"][key] == pytest.approx(
            np.mean([o["baselines"]["naive"][key] for o in backtest]))
    # seasonal naive at the earlier origin is refitted on the history before it: its forecast
    # is the season before that origin, not the one before the last
    forecasts = {row["id"]: row for row in forecast_windows.read_forecasts(
        outputs["evaluation"].path)}
    values = forecast_windows.read_series(examples.path)["s0"]["values"]
    early = len(values) - 2 * HORIZON
    assert np.allclose(forecasts[f"s0@{early}"]["baselines"]["seasonal_naive"],
                       values[early - 12:early - 12 + HORIZON])
    gates = {gate["name"]: gate for gate in artifacts.read_metrics(
        outputs["evaluation"].path)["blessing"]["gates"]}
    assert f"{scored['mase']:.4f}" in gates["beat_baseline"]["reason"]
    # evaluate refuses a setting other than the one the examples were cut with
    with pytest.raises(ValueError, match="backtest_windows = 3"):
        run_stage("evaluate", {"examples": examples, "model": trained["model"]}, {
            "task": "forecasting", "baselines": ["naive"], "backtest_windows": 3})


@pytest.mark.slow  # the fixtures' model is evaluated, quantized and pushed first (~20 s)
def test_the_relative_gate_skips_a_version_trained_on_this_runs_test_windows(
        tmp_path, run_stage, backtest_examples, backtest_model, forecast_examples,
        forecast_model, forecast_evaluation, forecast_tflite):
    """The pushed version was trained with one origin: its train windows hold the earlier
    origin's test windows, so re-running it there is no out-of-sample figure to compare."""
    registry = {"path": str(tmp_path / "registry"), "model_name": "sales"}
    pushed, _ = run_stage("push", {
        "examples": forecast_examples[1], "model": forecast_model[1],
        "evaluation": forecast_evaluation[1], "tflite": forecast_tflite[1]},
        {"registry": registry})
    assert pushed["pushed"]
    scored, outputs = run_stage("evaluate", {
        "examples": backtest_examples[1], "model": backtest_model["model"]}, {
        "task": "forecasting", "baselines": ["naive"], "registry": registry})
    gates = {gate["name"]: gate for gate in artifacts.read_metrics(
        outputs["evaluation"].path)["blessing"]["gates"]}
    relative = gates["relative"]
    assert not relative["applied"] and relative["baseline"]["version"] == 1
    assert "trained with backtest_windows = 1" in relative["reason"]
    assert "not out of sample" in relative["reason"]


def test_the_evaluate_setting_reaches_ingest_and_its_cache_key(tmp_path):
    from edgepipe.pipeline import config, dag, runner

    def plan(*overrides):
        loaded = config.load(FERTILITY, dag.specs(), overrides=list(overrides),
                             root=str(tmp_path))
        return loaded, {step.node.stage: step.key for step in runner.plan(loaded)}

    base_config, base = plan()
    loaded, moved = plan("evaluate.backtest_windows=3")
    assert base_config.stages["ingest"].forecast.backtest_windows == 1
    assert loaded.stages["ingest"].forecast.backtest_windows == 3
    assert loaded.stages["ingest"].forecast.required_history == 5 * 6 + 1
    assert moved["ingest"] != base["ingest"]
    with pytest.raises(config.ConfigError, match="backtest_windows"):
        plan("evaluate.backtest_windows=3", "forecast.backtest_windows=2")


def test_the_statsmodels_fits_log_their_progress(caplog):
    import logging

    from edgepipe.components.evaluate import forecasting

    rng = np.random.default_rng(0)
    histories = [20 + np.cumsum(rng.normal(size=24)) for _ in range(20)]
    actuals = np.stack([history[-1] + np.arange(1, 4) for history in histories])
    with caplog.at_level(logging.INFO, logger="edgepipe.evaluate"):
        forecasts, scores = forecasting.score_baselines(
            ["naive", "theta"], histories, actuals, 3, 1, [1.0] * 20)
    progress = [record.getMessage() for record in caplog.records]
    assert len(progress) == 10 and all("baseline theta" in text for text in progress)
    assert "2 / 20 windows" in progress[0] and "20 / 20 windows" in progress[-1]
    assert forecasts["theta"].shape == (20, 3) and scores["theta"]["fell_back_to_naive"] == 0
