"""The evaluate stage: metrics that agree with each other and with the model, and the gate."""

from __future__ import annotations

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest

from edgepipe.components.evaluate import metrics as evaluate_metrics
from edgepipe.components.evaluate import stage as evaluate
from edgepipe.components.shared import examples_io
from tests.conftest import CLASS_NAMES


def _predictions(evaluation_artifact) -> list[dict]:
    with open(evaluation_artifact.path / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_confusion_matrix_covers_the_test_split(evaluation_artifact, examples_artifact):
    confusion = json.loads((evaluation_artifact.path / "confusion.json").read_text())
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    matrix = np.array(confusion["matrix"])
    test_size = examples_io.split_size(examples_artifact.path, "test")
    assert confusion["class_names"] == list(CLASS_NAMES)
    assert matrix.shape == (10, 10)
    assert matrix.sum() == test_size == metrics["num_examples"] == 100
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["accuracy"])
    # Rows are true labels: their sums are the per-class supports.
    labels = examples_io.load_numpy(examples_artifact.path, "test")["label"]
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(labels, minlength=10))


def test_predictions_csv_agrees_with_metrics_and_the_model(
    evaluation_artifact, examples_artifact, model_artifact
):
    from edgepipe.models.keras import keras

    rows = _predictions(evaluation_artifact)
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    test = examples_io.load_numpy(examples_artifact.path, "test")
    assert [row["id"] for row in rows] == [str(record_id) for record_id in test["id"]]
    labels = np.array([int(row["label"]) for row in rows])
    predictions = np.array([int(row["prediction"]) for row in rows])
    confidence = np.array([float(row["confidence"]) for row in rows])
    np.testing.assert_array_equal(labels, test["label"])
    assert np.mean(labels == predictions) == pytest.approx(metrics["accuracy"])
    assert evaluation_artifact.properties["accuracy"] == pytest.approx(metrics["accuracy"])

    # Independently: the Keras model on the same images gives the same answers and loss.
    model = keras.models.load_model(model_artifact.path / "model.keras")
    probabilities = model.predict(test["image"].astype("float32"), verbose=0)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), predictions)
    np.testing.assert_allclose(probabilities.max(axis=1), confidence, atol=1e-5)
    entropy = np.array([float(row["entropy"]) for row in rows])
    expected_entropy = -(probabilities * np.log(np.clip(probabilities, 1e-12, 1))).sum(axis=1)
    np.testing.assert_allclose(entropy, expected_entropy, atol=1e-4)
    loss = np.mean(-np.log(probabilities[np.arange(len(labels)), labels]))
    assert metrics["loss"] == pytest.approx(loss, rel=1e-4)


def test_per_class_metrics_are_consistent(evaluation_artifact):
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    confusion = json.loads((evaluation_artifact.path / "confusion.json").read_text())
    matrix = np.array(confusion["matrix"])
    per_class = metrics["per_class"]
    assert list(per_class) == list(CLASS_NAMES)
    for index, name in enumerate(CLASS_NAMES):
        entry = per_class[name]
        assert entry["support"] == matrix[index].sum()
        if matrix[index].sum():
            assert entry["recall"] == pytest.approx(matrix[index, index] / matrix[index].sum())
        if matrix[:, index].sum():
            predicted = matrix[:, index].sum()
            assert entry["precision"] == pytest.approx(matrix[index, index] / predicted)
    assert metrics["macro_avg"]["f1"] == pytest.approx(
        np.mean([entry["f1"] for entry in per_class.values()])
    )
    # Weighted recall is the accuracy: each class's recall weighted by its share of examples.
    assert metrics["weighted_avg"]["recall"] == pytest.approx(metrics["accuracy"])


def test_compute_metrics_on_a_hand_checked_case():
    labels = np.array([0, 0, 1, 2])
    probabilities = np.array([
        [0.9, 0.1, 0.0],  # 0 -> 0
        [0.2, 0.8, 0.0],  # 0 -> 1
        [0.3, 0.7, 0.0],  # 1 -> 1
        [0.6, 0.4, 0.0],  # 2 -> 0, class 2 never predicted
    ])
    metrics = evaluate_metrics.compute_metrics(labels, probabilities, ["a", "b", "c"])
    assert metrics["confusion"] == {"matrix": [[1, 1, 0], [0, 1, 0], [1, 0, 0]]}
    assert metrics["accuracy"] == 0.5
    assert metrics["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert metrics["per_class"]["b"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # The true class got probability 0 once: the loss is large but finite (clipped at 1e-7).
    expected_loss = -(np.log(0.9) + np.log(0.2) + np.log(0.7) + np.log(1e-7)) / 4
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-6)



def test_top_k_calibration_and_confused_pairs_on_a_hand_checked_case():
    labels = np.array([0, 0, 1, 2, 2])
    probabilities = np.array([
        [0.9, 0.1, 0.0],    # right, confidence 0.9
        [0.3, 0.6, 0.1],    # wrong (0 -> 1), true class second
        [0.2, 0.75, 0.05],  # right, confidence 0.75
        [0.5, 0.4, 0.1],    # wrong (2 -> 0), true class third
        [0.55, 0.0, 0.45],  # wrong (2 -> 0), true class second
    ])
    assert evaluate_metrics.top_k_accuracy(labels, probabilities, (1, 2, 3)) == {
        "1": 0.4, "2": 0.8}  # k=3 covers every class: not reported
    result = evaluate_metrics.calibration(labels, probabilities, bins=2)
    low, high = result["bins"]
    # Bins are (0, 0.5] and (0.5, 1]: 0.5 | 0.55, 0.6, 0.75, 0.9.
    assert (low["count"], high["count"]) == (1, 4)
    assert low["accuracy"] == 0.0 and low["confidence"] == pytest.approx(0.5)
    assert high["accuracy"] == 0.5 and high["confidence"] == pytest.approx(0.7)
    assert result["ece"] == pytest.approx(1 / 5 * 0.5 + 4 / 5 * 0.2)
    matrix = evaluate_metrics.compute_metrics(labels, probabilities, ["a", "b", "c"])["confusion"]
    pairs = evaluate_metrics.confused_pairs(matrix, ["a", "b", "c"], count=5)
    assert pairs == [{"true": "c", "predicted": "a", "count": 2, "share_of_true": 1.0},
                     {"true": "a", "predicted": "b", "count": 1, "share_of_true": 0.5}]


def test_slices_cut_a_numeric_feature_into_quantile_buckets():
    values = np.arange(8.0)  # quartile edges 1.75, 3.5, 5.25
    labels = np.zeros(8, dtype=int)
    probabilities = np.tile([0.8, 0.2], (8, 1))
    probabilities[[0, 1, 7]] = [0.3, 0.7]  # wrong in the first bucket twice, the last once
    result = evaluate_metrics.slice_metrics(values, labels, probabilities, buckets=4, description="x")
    assert [row["num_examples"] for row in result["rows"]] == [2, 2, 2, 2]
    assert [row["accuracy"] for row in result["rows"]] == [0.0, 1.0, 1.0, 0.5]
    assert result["rows"][0]["value"] == "[0, 1.75)" and result["rows"][-1]["value"] == "[5.25, 7]"
    few = evaluate_metrics.slice_metrics(np.array([7, 7, 9]), labels[:3], probabilities[:3], 4, "x")
    assert [(row["value"], row["num_examples"]) for row in few["rows"]] == [("7", 2), ("9", 1)]


def test_metrics_json_has_top_k_calibration_and_brightness_slices(evaluation_artifact,
                                                                 examples_artifact):
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    rows = _predictions(evaluation_artifact)
    confidence = np.array([float(row["confidence"]) for row in rows])
    correct = np.array([row["label"] == row["prediction"] for row in rows])
    top_k = metrics["top_k_accuracy"]
    assert list(top_k) == ["2", "3"]
    assert metrics["accuracy"] <= top_k["2"] <= top_k["3"] <= 1.0
    assert top_k["3"] > metrics["accuracy"]  # a weak model's true class is often 2nd or 3rd

    bins = metrics["calibration"]["bins"]
    assert len(bins) == 10 and sum(entry["count"] for entry in bins) == 100
    recomputed = 0.0
    for entry in bins:
        members = (confidence > entry["lower"]) & (confidence <= entry["upper"])
        assert members.sum() == entry["count"]
        if entry["count"]:
            assert entry["accuracy"] == pytest.approx(correct[members].mean())
            recomputed += members.mean() * abs(correct[members].mean()
                                               - confidence[members].mean())
    assert metrics["calibration"]["ece"] == pytest.approx(recomputed, abs=1e-5)

    brightness = metrics["slices"]["brightness"]["rows"]
    assert len(brightness) == 4 and sum(row["num_examples"] for row in brightness) == 100
    weighted = sum(row["accuracy"] * row["num_examples"] for row in brightness) / 100
    assert weighted == pytest.approx(metrics["accuracy"])
    images = examples_io.load_numpy(examples_artifact.path, "test")["image"]
    darkest = images.reshape(100, -1).mean(axis=1) < float(brightness[0]["value"][1:].split(",")[0]) + 1e-9
    assert darkest.sum() <= 1  # the first bucket starts at the darkest image

    confusion = np.array(json.loads((evaluation_artifact.path / "confusion.json").read_text())["matrix"])
    np.fill_diagonal(confusion, 0)
    assert metrics["confused_pairs"][0]["count"] == confusion.max()


def test_singled_out_examples_are_the_least_sure_and_the_surest_wrong(evaluation_artifact):
    singled = json.loads((evaluation_artifact.path / "singled_out.json").read_text())
    rows = _predictions(evaluation_artifact)
    confidences = sorted(float(row["confidence"]) for row in rows)
    lowest = singled["lowest_confidence"]
    assert len(lowest) == 12
    assert [row["confidence"] for row in lowest] == pytest.approx(confidences[:12], abs=1e-6)
    wrong = sorted((float(row["confidence"]) for row in rows
                    if row["label"] != row["prediction"]), reverse=True)
    surest_wrong = singled["most_confidently_wrong"]
    assert surest_wrong and all(row["label"] != row["prediction"] for row in surest_wrong)
    assert [row["confidence"] for row in surest_wrong] == pytest.approx(wrong[:12], abs=1e-6)
    assert surest_wrong[0]["label_name"] == CLASS_NAMES[surest_wrong[0]["label"]]


def test_blessing_follows_the_threshold(run_stage, examples_artifact, model_artifact):
    inputs = {"examples": examples_artifact, "model": model_artifact}
    properties, artifacts = run_stage("evaluate", inputs, {"min_accuracy": 0.0})
    path = artifacts["evaluation"].path
    accuracy = properties["accuracy"]
    assert properties["blessed"] is True
    assert properties["reason"] == f"accuracy {accuracy:.3f} >= threshold 0.000"
    marker = (path / "BLESSED").read_text()
    assert marker.startswith(properties["reason"]) and "relative: not applied: no [registry] configured" in marker
    assert not (path / "NOT_BLESSED").exists()

    assert accuracy < 1.0  # two epochs on 240 images cannot be perfect
    properties, artifacts = run_stage("evaluate", inputs, {"min_accuracy": 1.0})
    path = artifacts["evaluation"].path
    assert properties["blessed"] is False
    assert properties["reason"] == f"accuracy {accuracy:.3f} < threshold 1.000"
    assert (path / "NOT_BLESSED").read_text().splitlines()[0] == properties["reason"]
    assert not (path / "BLESSED").exists()
    blessing = json.loads((path / "metrics.json").read_text())["blessing"]
    assert blessing["blessed"] is False and blessing["gates"][0]["passed"] is False


def test_config_is_checked():
    with pytest.raises(ValueError, match="min_accuracy"):
        evaluate.Config(min_accuracy=85)
    with pytest.raises(ValueError, match="top_k"):
        evaluate.Config(top_k=(0, 2))
    assert evaluate.Config().registry is None


# --- The relative gate against a model registry in the push stage's format -----------------

def push(registry: pathlib.Path, name: str, version: int, model_artifact, accuracy: float,
         examples_key: str, model_key: str = "an-earlier-model") -> pathlib.Path:
    """A registry version as the push stage writes it: the SavedModel at the version's root
    (TF Serving's layout), model.json, metadata.json. Its model key is another model's unless
    given: a model is never its own baseline."""
    model_json = json.loads((model_artifact.path / "model.json").read_text())
    staging = registry / name / f".{version}.partial"
    shutil.copytree(model_artifact.path / "saved_model", staging)
    shutil.copy(model_artifact.path / "model.json", staging / "model.json")
    (staging / "metadata.json").write_text(json.dumps({
        "version": version, "pipeline": name, "run_id": f"run-{version}",
        "metrics": {"accuracy": accuracy}, "examples_key": examples_key,
        "model_key": model_key, "variant": "float32",
        "class_names": model_json["class_names"], "input": {"name": "image"},
        "pushed": "2026-11-01T00:00:00+00:00",
    }))
    staging.rename(registry / name / str(version))  # a version appears complete or not at all
    return registry / name / str(version)


@pytest.fixture(scope="module")
def weak_model(run_stage, examples_artifact, statistics_artifacts) -> object:
    """One epoch at a learning rate too small to learn anything: a deliberately bad model."""
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    _, artifacts = run_stage("train", inputs, {"epochs": 1, "batch_size": 32,
                                               "learning_rate": 1e-7})
    return artifacts["model"]


def test_weakened_model_is_not_blessed_against_the_pushed_baseline(
        run_stage, tmp_path, examples_artifact, model_artifact, evaluation_artifact, weak_model):
    baseline = evaluation_artifact.properties["accuracy"]
    push(tmp_path, "tests", 1, model_artifact, baseline, examples_artifact.key)
    config = {"min_accuracy": 0.0, "registry": {"path": str(tmp_path), "model_name": "tests"}, "max_accuracy_drop": 1.0}

    properties, artifacts = run_stage("evaluate", {"examples": examples_artifact,
                                                   "model": weak_model}, config)
    weak = properties["accuracy"]
    assert 100 * (baseline - weak) > 1.0, "the weakened model must be clearly worse"
    assert properties["blessed"] is False
    assert "below tests v1" in properties["reason"]
    assert "threshold" not in properties["reason"]  # only the failed gate is the reason
    path = artifacts["evaluation"].path
    assert (path / "NOT_BLESSED").read_text().splitlines()[0] == properties["reason"]
    relative = json.loads((path / "metrics.json").read_text())["blessing"]["gates"][1]
    assert relative["applied"] and not relative["passed"]
    assert relative["baseline"] == {"model_name": "tests", "version": 1, "run_id": "run-1",
                                    "accuracy": baseline, "source": "metadata"}
    assert relative["drop_points"] == pytest.approx(100 * (baseline - weak))

    # A model as good as the baseline, and anything within the allowed drop, is blessed.
    properties, _ = run_stage("evaluate", {"examples": examples_artifact,
                                           "model": model_artifact}, config)
    assert properties["blessed"] is True and "equal to tests v1" in properties["reason"]


def test_a_model_is_never_its_own_baseline(run_stage, tmp_path, examples_artifact,
                                           model_artifact, weak_model):
    """After this model is pushed, its evaluation compares with the version before it, so a
    second run finds evaluate cached instead of re-judging the model against itself."""
    push(tmp_path, "tests", 1, weak_model, 0.1, examples_artifact.key, weak_model.key)
    push(tmp_path, "tests", 2, model_artifact, 0.9, examples_artifact.key, model_artifact.key)
    config = {"registry": {"path": str(tmp_path), "model_name": "tests"}}
    _, artifacts = run_stage("evaluate", {"examples": examples_artifact,
                                          "model": model_artifact}, config)
    relative = json.loads((artifacts["evaluation"].path / "metrics.json").read_text())[
        "blessing"]["gates"][1]
    assert relative["baseline"]["version"] == 1



def test_push_refuses_the_weakened_model(run_stage, tmp_path, examples_artifact, model_artifact,
                                         evaluation_artifact, tflite_artifact, weak_model):
    from edgepipe.contracts import registry

    push(tmp_path, "tests", 1, model_artifact, evaluation_artifact.properties["accuracy"],
         examples_artifact.key)
    _, artifacts = run_stage("evaluate", {"examples": examples_artifact, "model": weak_model},
                             {"registry": {"path": str(tmp_path), "model_name": "tests"}})
    assert (artifacts["evaluation"].path / "NOT_BLESSED").is_file()
    inputs = {"examples": examples_artifact, "model": weak_model,
              "evaluation": artifacts["evaluation"], "tflite": tflite_artifact}
    properties, _ = run_stage("push", inputs, {"registry": {"path": str(tmp_path), "model_name": "tests"}})
    assert properties["pushed"] is False and "not blessed" in properties["reason"]
    assert registry.list_versions(tmp_path, "tests") == [1]  # nothing new was pushed


def test_relative_gate_re_evaluates_a_baseline_measured_on_other_examples(
        run_stage, tmp_path, examples_artifact, model_artifact, evaluation_artifact):
    # The recorded 0.99 was measured on other data: the gate must not trust it.
    push(tmp_path, "fashion", 3, model_artifact, 0.99, "some-other-examples-key")
    config = {"registry": {"path": str(tmp_path), "model_name": "fashion"}, "max_accuracy_drop": 0.0}
    properties, artifacts = run_stage("evaluate", {"examples": examples_artifact,
                                                   "model": model_artifact}, config)
    relative = json.loads((artifacts["evaluation"].path / "metrics.json").read_text())[
        "blessing"]["gates"][1]
    assert relative["baseline"]["source"] == "re-evaluated"
    assert relative["baseline"]["accuracy"] == pytest.approx(
        evaluation_artifact.properties["accuracy"])
    assert properties["blessed"] is True and "re-evaluated on this test split" in properties["reason"]


def test_relative_gate_says_why_it_was_not_applied(run_stage, tmp_path, examples_artifact,
                                                   model_artifact):
    inputs = {"examples": examples_artifact, "model": model_artifact}
    properties, artifacts = run_stage("evaluate", inputs, {"registry": {"path": str(tmp_path), "model_name": "tests"}})
    gate = json.loads((artifacts["evaluation"].path / "metrics.json").read_text())[
        "blessing"]["gates"][1]
    assert properties["blessed"] is True and gate["applied"] is False
    assert "no earlier version of 'tests'" in gate["reason"]
    assert gate["reason"] in (artifacts["evaluation"].path / "BLESSED").read_text()


def test_fingerprint_follows_the_baseline_not_this_models_own_push(
        tmp_path, examples_artifact, model_artifact):
    inputs = {"examples": examples_artifact, "model": model_artifact}
    assert evaluate.fingerprint(evaluate.Config(), inputs) == ""
    config = evaluate.Config(registry={"path": str(tmp_path), "model_name": "tests"})
    empty = evaluate.fingerprint(config, inputs)
    push(tmp_path, "tests", 1, model_artifact, 0.5, examples_artifact.key)
    first = evaluate.fingerprint(config, inputs)
    push(tmp_path, "tests", 2, model_artifact, 0.6, examples_artifact.key, "yet-another-model")
    second = evaluate.fingerprint(config, inputs)
    assert len({empty, first, second}) == 3
    assert evaluate.fingerprint(config, inputs) == second  # stable while nothing is pushed
    push(tmp_path, "tests", 3, model_artifact, 0.7, examples_artifact.key, model_artifact.key)
    assert evaluate.fingerprint(config, inputs) == second  # its own push is no new baseline


def test_integer_slices_get_integer_bucket_edges():
    lengths = np.array([7, 8, 9, 10, 11, 12, 13, 14, 20])
    labels = np.zeros(len(lengths), dtype=int)
    probabilities = np.tile([0.9, 0.1], (len(lengths), 1))
    rows = evaluate_metrics.slice_metrics(lengths, labels, probabilities, 4, "length")["rows"]
    assert [row["value"] for row in rows] == ["[7, 9)", "[9, 11)", "[11, 13)", "[13, 20]"]
    assert sum(row["num_examples"] for row in rows) == len(lengths)
