"""Regression through the real stages: numeric targets in, values in the data's units out.

The table (tests/regression_fixtures.py) is generated with a known answer, so the tests can
say what a model that learned must reach; ingest, statistics, train, evaluate, quantize and
report run for real on it.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, litert, model_inputs
from edgepipe.pipeline import config as pipeline_config
from edgepipe.pipeline import dag

from tests.regression_fixtures import ROWS, TARGETS


def test_targets_are_read_and_bad_ones_quarantined_with_their_reason(regression_examples):
    properties, examples = regression_examples
    assert properties["target_names"] == TARGETS
    assert properties["quarantined"]["by_reason"] == {
        "missing_target": 1, "unparseable_target": 1, "non_finite_target": 1}
    assert sum(properties["splits"].values()) == ROWS
    test = examples_io.load_numpy(examples.path, "test")
    assert test["target"].shape == (properties["splits"]["test"], 2)
    assert test["target"].dtype == np.float32
    assert examples_io.target_names(examples.path) == TARGETS
    assert examples_io.class_names(examples.path) == []


def test_statistics_describe_the_targets_and_the_schema_requires_them(regression_statistics):
    statistics = artifacts.read_statistics(regression_statistics["statistics"].path)
    train = statistics["splits"]["train"]["features"]["target"]
    assert train["names"] == TARGETS and train["missing"] == 0
    price = train["columns"]["price"]
    assert 300 < price["mean"] < 500 and price["min"] < price["mean"] < price["max"]
    assert sum(price["histogram"]["counts"]) == price["count"]
    schema = (regression_statistics["schema"].path / "schema.pbtxt").read_text()
    assert 'name: "target"' in schema and 'value: "price"' in schema


def test_the_model_learns_and_returns_values_in_the_data_units(regression_examples,
                                                                regression_model):
    properties, model_dir = regression_model
    info = artifacts.read_model_info(model_dir.path)
    assert info["task"] == "regression" and info["target_names"] == TARGETS
    assert properties["loss"] == "huber"
    # mlp [32, 16] on 4 features + the head (16 -> 2) + normalisation constants
    from edgepipe.models.keras import keras

    model = keras.models.load_model(model_dir.path / "model.keras")
    assert model.output_shape == (None, 2) and model.layers[-1].name == "values"
    test = examples_io.load_numpy(regression_examples[1].path, "test")
    values = model.predict(model_inputs.prepare(info, test["sequence"]), verbose=0)
    error = np.abs(values - test["target"]).mean(axis=0)
    spread = test["target"].std(axis=0)
    # Predicting the mean would err by about 0.8 std; a model that learned does far better.
    assert (error < 0.3 * spread).all(), (error, spread)


def test_evaluate_reports_mae_rmse_r2_and_gates_on_mae(run_stage, regression_examples,
                                                        regression_model, regression_evaluation):
    properties, evaluation = regression_evaluation
    assert set(properties) >= {"mae", "rmse", "r2", "blessed", "reason"}
    assert properties["rmse"] >= properties["mae"] > 0 and 0.5 < properties["r2"] <= 1.0
    assert properties["blessed"] and "mae" in properties["reason"]
    metrics = artifacts.read_metrics(evaluation.path)
    assert set(metrics["per_target"]) == set(TARGETS)
    assert metrics["slices"]["target"]["rows"]
    with open(evaluation.path / artifacts.PREDICTIONS) as stream:
        header = next(csv.reader(stream))
    assert header == ["id", "price", "delta", "predicted_price", "predicted_delta", "abs_error"]
    largest = artifacts.read_singled_out(evaluation.path)["largest_errors"]
    assert largest[0]["abs_error"] >= largest[-1]["abs_error"]
    strict = {"examples": regression_examples[1], "model": regression_model[1]}
    refused, _ = run_stage("evaluate", strict, {"task": "regression", "max_mae": 1e-6})
    assert not refused["blessed"] and "threshold" in refused["reason"]


def test_every_variant_is_scored_by_mae_in_the_data_units(regression_examples, regression_model,
                                                          regression_tflite):
    properties, tflite = regression_tflite
    variants = {record["name"]: record for record in artifacts.read_variants(tflite.path)}
    assert set(variants) == {"float32", "dynamic_range", "int8", "qat_int8"}
    deployable = artifacts.read_deployable(tflite.path)
    keras_mae = deployable["policy"]["keras_mae"]
    assert deployable["policy"]["metric"] == "mae"
    # float32 converts faithfully; int8's output is dequantized back to the data's units.
    assert variants["float32"]["mae"] == pytest.approx(keras_mae, rel=1e-3)
    assert variants["int8"]["mae"] < 2 * keras_mae
    assert variants["qat_int8"]["mae"] < 2 * keras_mae  # fine-tuned on the regression loss
    assert "mae" in deployable["reason"].lower()
    info = artifacts.read_model_info(regression_model[1].path)
    test = examples_io.load_numpy(regression_examples[1].path, "test")
    batch = model_inputs.prepare(info, test["sequence"][:20])
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=(tflite.path / "int8.tflite").read_bytes())
    interpreter.allocate_tensors()
    outputs = litert.invoke_each(interpreter, batch)
    assert np.abs(outputs - test["target"][:20]).mean() < 3 * keras_mae


def test_config_errors_name_what_fits_the_task():
    modules = dag.specs()
    base = {"pipeline": {"name": "t", "task": "regression"},
            "ingest": {"source": "csv", "train": __file__, "target_column": "y"}}
    with pytest.raises(pipeline_config.ConfigError, match="min_accuracy: not used by task"):
        pipeline_config.load({**base, "evaluate": {"min_accuracy": 0.9}}, modules)
    with pytest.raises(pipeline_config.ConfigError, match="does not fit task 'regression'"):
        pipeline_config.load({**base, "train": {"loss": "crossentropy"}}, modules)
    with pytest.raises(pipeline_config.ConfigError, match="numeric targets, which the 'idx'"):
        pipeline_config.load({**base, "ingest": {"source": "idx", "train_images": __file__,
                                                 "train_labels": __file__,
                                                 "class_names": ["a"]}}, modules)
    classification = {"pipeline": {"name": "t"}, "ingest": {
        "source": "csv", "train": __file__, "label_column": "y", "target_column": "z"}}
    with pytest.raises(pipeline_config.ConfigError, match="target_column: numeric targets need"):
        pipeline_config.load(classification, modules)
    with pytest.raises(pipeline_config.ConfigError, match="unknown task 'ranking'"):
        pipeline_config.load({**base, "pipeline": {"name": "t", "task": "ranking"}}, modules)


def test_the_report_shows_errors_not_accuracies(run_stage, regression_examples,
                                                regression_statistics, regression_model,
                                                regression_evaluation, regression_tflite):
    inputs = {"examples": regression_examples[1], "statistics": regression_statistics["statistics"],
              "model": regression_model[1], "evaluation": regression_evaluation[1],
              "tflite": regression_tflite[1]}
    properties, outputs = run_stage("report", inputs, {})
    assert properties["mae"] == pytest.approx(regression_evaluation[0]["mae"])
    html = (outputs["report"].path / "report.html").read_text()
    for marker in ('id="fig-predicted-vs-actual"', 'id="fig-residuals"',
                   'id="largest-errors-table"', 'data-slice="target"', "Δ vs Keras (%)"):
        assert marker in html, marker
    assert "Test accuracy" not in html and "confusion" not in html.lower()
    summary = json.loads((outputs["report"].path / "summary.json").read_text())
    assert summary["task"] == "regression" and len(summary["largest_error_ids"]) == 12
