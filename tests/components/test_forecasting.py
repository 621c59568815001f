"""Forecasting through the real stages: series in, windows cut in Beam, a global model that
scales each window inside, forecasts in the series' own units out.

The series (tests/forecast_fixtures.py) are generated with a known shape and one series per
bad case, so the tests can say which series must be repaired, padded or quarantined."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import forecast_windows

from tests.forecast_fixtures import GOOD, HORIZON, LENGTH, LOOKBACK, SHORT


def test_bad_series_are_repaired_or_quarantined_by_name(forecast_examples):
    properties, examples = forecast_examples
    assert properties["quarantined"]["series"] == {"tiny": "too_short"}
    repaired = properties["repaired"]
    assert repaired["gappy"] == {"gap": 1}
    assert repaired["dupes"] == {"duplicate_timestamp": 1}
    assert repaired["backwards"] == {"time_goes_backwards": 1}
    assert repaired["words"] == {"non_numeric_value": 1}
    assert properties["series"] == {"read": GOOD + 6, "kept": GOOD + 5, "quarantined": 1,
                                    "repaired": 4}
    series = forecast_windows.read_series(examples.path)
    # the later of two rows of a timestamp is kept; the gap is interpolated
    assert series["dupes"]["values"][29] == 999.0
    gappy = series["gappy"]["values"]
    assert gappy[20] == pytest.approx((gappy[19] + gappy[21]) / 2)
    assert series["gappy"]["frequency"] == "MS"
    assert len(series["short"]["values"]) == SHORT


def test_with_fill_none_each_bad_series_is_quarantined_with_its_problem():
    """The ingest's per-series check (what the Beam step runs on each grouped series) on the
    fixture's rows, with fill = "none": each bad series raises its own reason, by name."""
    import types

    from edgepipe.components.ingest import series_checks
    from edgepipe.pipeline.sections import ForecastSection
    from tests.forecast_fixtures import rows

    config = types.SimpleNamespace(
        fill="none", frequency=None,
        forecast=ForecastSection(horizon=HORIZON, lookback=LOOKBACK, min_history=10))
    by_series: dict = {}
    for number, (name, time, value, promo) in enumerate(rows(), start=2):
        by_series.setdefault(name, []).append((f"series.csv:{number}", time, [value, promo]))
    reasons = {}
    for name, series_rows in by_series.items():
        try:
            series_checks.check_series(name, series_rows, config, 2)
        except series_checks.Quarantined as problem:
            reasons[name] = problem.reason
            assert repr(name) in problem.detail
    assert reasons == {"gappy": "gap", "dupes": "duplicate_timestamp",
                       "backwards": "time_goes_backwards", "words": "non_numeric_value",
                       "tiny": "too_short"}


def test_splits_are_by_time_and_a_short_series_gets_padded_windows(forecast_examples):
    properties, examples = forecast_examples
    kept = GOOD + 5
    assert properties["splits"]["test"] == kept and properties["splits"]["validation"] == kept
    train_per_series = (LENGTH - 3 * HORIZON) * (kept - 1) + (SHORT - 3 * HORIZON)
    assert properties["splits"]["train"] == train_per_series
    test = examples_io.load_numpy(examples.path, "test")
    ids = [forecast_windows.series_of(value) for value in test["id"]]
    series = forecast_windows.read_series(examples.path)
    row = ids.index("s1")
    # the test target is the series' last horizon values, its input the lookback before
    assert np.allclose(test["target"][row], series["s1"]["values"][-HORIZON:], rtol=1e-5)
    window = np.asarray(test["sequence"][row])
    assert window.shape == (LOOKBACK, 3)   # value, promo, mask: the full lookback
    assert np.allclose(window[:, 0], series["s1"]["values"][-HORIZON - LOOKBACK:-HORIZON])
    short = np.asarray(test["sequence"][ids.index("short")])
    assert short.shape == (SHORT - HORIZON, 3) and (short[:, 2] == 1).all()


def test_the_model_takes_raw_windows_and_answers_in_the_series_units(forecast_examples,
                                                                      forecast_model):
    from edgepipe.contracts import artifacts, model_inputs
    from edgepipe.models.keras import keras

    _, model_dir = forecast_model
    info = artifacts.read_model_info(model_dir.path)
    assert info["task"] == "forecasting" and info["input_shape"] == [LOOKBACK, 3]
    assert info["forecast"]["horizon"] == HORIZON
    model = keras.models.load_model(model_dir.path / "model.keras")
    test = examples_io.load_numpy(forecast_examples[1].path, "test")
    batch = model_inputs.prepare(info, test["sequence"])
    forecasts = model.predict(batch, verbose=0)
    assert forecasts.shape == (len(batch), HORIZON)
    # levels from 10 to 810: a model answering in scaled units would miss by orders of
    # magnitude; this one is within 25% of each series' level
    relative = np.abs(forecasts - test["target"]).mean(axis=1) / np.abs(test["target"]).mean(axis=1)
    assert np.median(relative) < 0.25, relative
    # scaling is inside: the same window 1000 times larger gives 1000 times the forecast
    larger = batch.copy()
    larger[:, :, 0] *= 1000.0
    assert np.allclose(model.predict(larger, verbose=0), 1000.0 * forecasts, rtol=1e-3)


def test_a_series_shorter_than_the_lookback_is_padded_and_the_model_sees_it(forecast_model):
    from edgepipe.contracts import artifacts, model_inputs
    from edgepipe.models.keras import keras

    info = artifacts.read_model_info(forecast_model[1].path)
    raw = [[50.0, 1.0], [55.0, 0.0], [61.0, 1.0], [58.0, 0.0], [52.0, 1.0]]  # value, promo
    window = model_inputs.prepare(info, [raw])
    assert window.shape == (1, LOOKBACK, 3)
    assert (window[0, :LOOKBACK - 5] == 0).all()          # padding: zeros, mask 0
    assert (window[0, LOOKBACK - 5:, 2] == 1).all()       # real steps: mask 1
    assert np.allclose(window[0, LOOKBACK - 5:, :2], raw)
    model = keras.models.load_model(forecast_model[1].path / "model.keras")
    forecast = model.predict(window, verbose=0)[0]
    # padding does not drag the scale down: the forecast is at the series' level (~50),
    # not at the level of a window averaged with seven zeros (~23)
    assert 30 < forecast.mean() < 80, forecast
    unmasked = window.copy()
    unmasked[0, :, 2] = 1.0  # the same zeros presented as real values
    assert not np.allclose(model.predict(unmasked, verbose=0)[0], forecast, rtol=1e-2)


def test_evaluate_scores_the_model_beside_the_baselines(forecast_evaluation):
    from edgepipe.contracts import artifacts

    properties, evaluation = forecast_evaluation
    assert set(properties) >= {"smape", "mase", "mae", "rmse", "baselines", "blessed"}
    assert set(properties["baselines"]) == {"naive", "seasonal_naive"}
    assert len(properties["per_step"]["smape"]) == HORIZON
    metrics = artifacts.read_metrics(evaluation.path)
    assert len(metrics["per_series"]) == GOOD + 5
    # the series repeat their yearly cycle: seasonal naive is far better than naive
    scores = metrics["baselines"]
    assert scores["seasonal_naive"]["smape"] < scores["naive"]["smape"]
    # a model that learned the shape beats the last value repeated
    assert properties["mase"] < scores["naive"]["mase"]


def test_the_gates_refuse_a_model_above_max_mase_or_behind_the_baseline(
        run_stage, forecast_examples, forecast_model, forecast_evaluation):
    from edgepipe.contracts import artifacts

    inputs = {"examples": forecast_examples[1], "model": forecast_model[1]}
    properties, outputs = run_stage("evaluate", inputs, {
        "task": "forecasting", "max_mase": 1e-6, "baselines": ["naive"],
        "beat_baseline": "naive"})
    evaluation = outputs["evaluation"]
    assert not properties["blessed"]
    assert "mase" in properties["reason"] and "threshold" in properties["reason"]
    gates = {gate["name"]: gate for gate in artifacts.read_metrics(evaluation.path)[
        "blessing"]["gates"]}
    assert gates["beat_baseline"]["passed"] and not gates["max_mase"]["passed"]
    assert (evaluation.path / "NOT_BLESSED").exists()


def test_baselines_and_mase_on_known_series():
    from edgepipe.components.evaluate import baselines
    from edgepipe.components.shared import forecast_metrics

    season = np.tile([1.0, 5.0, 3.0, 9.0], 6)
    forecast, fell_back = baselines.forecast("seasonal_naive", season[:-4], 4, 4)
    assert not fell_back and np.allclose(forecast, season[-4:])
    line = 10.0 + 2.0 * np.arange(20)
    assert np.allclose(baselines.forecast("naive", line[:-3], 3, 1)[0], line[-4])
    ets, _ = baselines.forecast("ets", line[:-3], 3, 1)
    assert np.allclose(ets, line[-3:], rtol=0.01), ets
    theta, _ = baselines.forecast("theta", line[:-3], 3, 1)
    # the Theta method is SES with a drift of half the linear trend (2 / 2 per step)
    assert np.allclose(np.diff(theta), 1.0, rtol=0.05) and abs(theta[0] - line[-4] - 1) < 0.1, theta
    # MASE: in-sample seasonal naive MAE of [1, 2, 4, 7] with season 1 is (1 + 2 + 3) / 3 = 2
    assert forecast_metrics.seasonal_scale([1, 2, 4, 7], 1) == 2.0
    summary = forecast_metrics.summary([[9.0, 11.0]], [[10.0, 10.0]], [2.0])
    assert summary["mase"] == 0.5 and summary["mae"] == 1.0
    assert summary["smape"] == pytest.approx((200 / 19 + 200 / 21) / 2)


def test_every_variant_is_scored_by_smape_and_mase_on_litert(forecast_examples, forecast_model,
                                                              forecast_evaluation,
                                                              forecast_tflite):
    from edgepipe.components.quantize import metadata
    from edgepipe.contracts import artifacts

    properties, tflite = forecast_tflite
    variants = {record["name"]: record for record in artifacts.read_variants(tflite.path)}
    deployable = artifacts.read_deployable(tflite.path)
    assert deployable["policy"]["metric"] == "smape"
    keras_smape = deployable["policy"]["keras_smape"]
    # the same sMAPE evaluate measured through the SavedModel
    assert keras_smape == pytest.approx(forecast_evaluation[0]["smape"], rel=1e-3)
    assert variants["float32"]["smape"] == pytest.approx(keras_smape, rel=1e-3)
    assert variants["float32"]["mase"] == pytest.approx(forecast_evaluation[0]["mase"], rel=1e-3)
    # full int8 keeps the per-window scaling float (forecast_head.scaling_layers): one int8
    # scale of raw windows for every level (10..800) cost ~10x the sMAPE, scaled ones do not
    assert keras_smape < variants["int8"]["smape"] < 3 * keras_smape
    if variants["int8"]["smape"] > 1.01 * keras_smape:  # the policy says why it chose another
        assert deployable["variant"] != "int8" and "int8 (" in deployable["reason"]
    described = metadata.read_embedded((tflite.path / "float32.tflite").read_bytes())
    assert described is not None


@pytest.mark.slow  # ~10 s of matplotlib: the default suite's budget
def test_the_report_draws_series_and_sets_the_model_beside_the_baselines(
        run_stage, forecast_examples, forecast_statistics, forecast_model, forecast_evaluation,
        forecast_tflite):
    import json

    inputs = {"examples": forecast_examples[1], "statistics": forecast_statistics["statistics"],
              "model": forecast_model[1], "evaluation": forecast_evaluation[1],
              "tflite": forecast_tflite[1]}
    properties, outputs = run_stage("report", inputs, {})
    html = (outputs["report"].path / "report.html").read_text()
    for marker in ('id="fig-series"', 'id="fig-error-by-step"', 'id="fig-per-series"',
                   'id="baselines-table"', "seasonal_naive", 'id="quarantined-series"',
                   "too_short"):
        assert marker in html, marker
    summary = json.loads((outputs["report"].path / "summary.json").read_text())
    assert summary["task"] == "forecasting"
    assert summary["smape"] == pytest.approx(forecast_evaluation[0]["smape"])
    assert set(summary["baselines"]) == {"naive", "seasonal_naive"}


USER_BUILDER = '''
from edgepipe.models.keras import keras


def build(input_shape, num_classes, mean, variance):
    inputs = keras.Input(shape=tuple(input_shape), name="sequence")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance)(inputs)
    x = keras.layers.GRU(8)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
'''


@pytest.mark.slow  # ~15 s for the three builds: the default suite's budget
@pytest.mark.parametrize("builder", ["lstm", "conv1d", "user"])
def test_every_builder_gets_the_scaling_forecast_head(tmp_path, forecast_model, builder):
    """The built-ins and a user's builder (its softmax layer replaced): one output per step,
    in the series' units (scale equivariant), from raw windows."""
    import types

    from edgepipe.components.shared import model_builder
    from edgepipe.contracts import artifacts

    spec = artifacts.read_model_info(forecast_model[1].path)
    if builder == "user":
        path = tmp_path / "my_model.py"
        path.write_text(USER_BUILDER)
        builder = f"{path}:build"
    config = types.SimpleNamespace(model=builder, model_options={})
    model = model_builder.build(config, spec, len(spec["target_names"]))
    assert model.output_shape == (None, HORIZON)
    window = np.random.default_rng(1).uniform(50, 150, size=(2, LOOKBACK, 3)).astype(np.float32)
    window[:, :, 2] = 1.0
    larger = window.copy()
    larger[:, :, 0] *= 100.0
    np.testing.assert_allclose(model.predict(larger, verbose=0),
                               100.0 * model.predict(window, verbose=0), rtol=1e-3)


def test_the_wide_format_makes_one_series_per_column(tmp_path):
    import types

    from edgepipe.components.ingest import series_rows

    path = tmp_path / "wide.csv"
    path.write_text("month,north,south\n2020-01-01,1,10\n2020-02-01,2,x\n")
    config = types.SimpleNamespace(format="wide", time_column="month", encoding="utf-8",
                                   target_columns=(), covariate_columns=(),
                                   series_column="series_id")
    layout = series_rows.columns(config, str(path))
    assert layout["series"] == ["north", "south"]
    rows = [value for tag, value in series_rows.read_rows(str(path), config, layout)]
    assert rows == [("north", (f"{path}:2", "2020-01-01", ["1"])),
                    ("south", (f"{path}:2", "2020-01-01", ["10"])),
                    ("north", (f"{path}:3", "2020-02-01", ["2"])),
                    ("south", (f"{path}:3", "2020-02-01", ["x"]))]


def test_quantile_outputs_give_intervals_scored_by_coverage(forecast_model):
    """With [forecast] quantiles the head returns horizon x quantiles values (pinball loss);
    the server splits them into point forecasts and intervals; evaluate scores coverage."""
    import types

    from edgepipe.components.shared import forecast_head, forecast_metrics, model_builder
    from edgepipe.contracts import artifacts
    from edgepipe.models.keras import keras
    from edgepipe.serving import answers

    spec = artifacts.read_model_info(forecast_model[1].path)
    spec = {**spec, "forecast": {**spec["forecast"], "quantiles": [0.1, 0.5, 0.9]}}
    model = model_builder.build(types.SimpleNamespace(model="mlp", model_options={}), spec,
                                HORIZON)
    assert model.output_shape == (None, HORIZON * 3)
    loss, _ = forecast_head.loss(keras, types.SimpleNamespace(loss=None), spec)
    targets = np.array([[10.0, 10.0, 10.0]], np.float32)
    exact = np.array([[9.0, 10.0, 11.0] * HORIZON], np.float32)   # median right, band around
    wide = np.array([[0.0, 10.0, 20.0] * HORIZON], np.float32)
    assert float(loss(targets, exact)[0]) < float(loss(targets, wide)[0])
    answer = answers.forecasting(exact, [f"t+{s} q{q:g}" for s in range(1, HORIZON + 1)
                                         for q in (0.1, 0.5, 0.9)], "predictions")
    assert answer["predictions"] == [[10.0] * HORIZON]
    assert answer["intervals"]["lower"] == [[9.0] * HORIZON]
    grid = exact.reshape(1, HORIZON, 3).astype(np.float64)
    scored = forecast_metrics.intervals([[10.0, 12.0, 10.0]], grid, [0.1, 0.5, 0.9])
    assert scored["coverage"] == pytest.approx(2 / 3) and scored["width"] == 2.0
