"""The tune stage on the tiny Fashion-MNIST sample: a 3-trial search through the real Store,
its artifact, resuming a killed search, and the bad inputs that are config errors."""

from __future__ import annotations

import pytest

from edgepipe.components.train import stage as train_stage
from edgepipe.components.tune import search
from edgepipe.contracts import artifacts
from tests.conftest import REPO

TRAIN = {"epochs": 2, "batch_size": 32, "model_options": {"filters": [8], "dense_units": 16}}
SPACE = {"learning_rate": {"log_uniform": [3e-4, 3e-3]},
         "model_options.dropout": {"uniform": [0.1, 0.5]},
         "model_options.dense_units": {"int": [8, 32]},
         "model_options.filters": {"choice": [[8], [8, 16]]}}


def tune_config(**changes) -> dict:
    return {"train": train_stage.Config.model_validate(TRAIN), "trials": 3,
            "epochs_per_trial": 2, "space": SPACE, **changes}


@pytest.fixture(scope="module")
def tuned(run_stage, examples_artifact, statistics_artifacts):
    inputs = {"examples": examples_artifact, "statistics": statistics_artifacts["statistics"]}
    return run_stage("tune", inputs, tune_config())


def test_three_trials_are_recorded_with_the_best_parameters(tuned):
    properties, outputs = tuned
    tuning = artifacts.read_tuning(outputs["tuning"].path)
    assert properties["trials"] == len(tuning["trials"]) == 3
    assert set(properties) >= {"trials", "best_params", "best_value", "pruned", "metric"}
    numbers = [trial["number"] for trial in tuning["trials"]]
    assert numbers == [0, 1, 2]
    for trial in tuning["trials"]:
        assert set(trial["params"]) == set(SPACE)
        assert 3e-4 <= trial["params"]["learning_rate"] <= 3e-3
        assert trial["params"]["model_options.filters"] in ([8], [8, 16])
        assert 8 <= trial["params"]["model_options.dense_units"] <= 32
        assert trial["seconds"] > 0 and trial["pruned"] in (True, False)
        assert 0.0 <= trial["val_accuracy"] <= 1.0
    # The first trial is the [train] config as written (a builder default where it leaves an
    # option out), where the space holds the value.
    first = tuning["trials"][0]["params"]
    assert first["model_options.dense_units"] == 16 and first["model_options.filters"] == [8]
    assert first["model_options.dropout"] == 0.3  # cnn's default
    assert first["learning_rate"] == 1e-3
    complete = [trial for trial in tuning["trials"] if trial["state"] == "complete"]
    best = max(complete, key=lambda trial: trial["value"])
    assert tuning["best_trial"] == best["number"] == properties["best_trial"]
    assert tuning["best_params"] == best["params"] == properties["best_params"]
    assert properties["best_value"] == pytest.approx(best["val_accuracy"])


def test_train_trains_with_the_best_parameters(run_stage, tuned, examples_artifact,
                                               statistics_artifacts):
    _, outputs = tuned
    best = artifacts.read_tuning(outputs["tuning"].path)["best_params"]
    inputs = {"examples": examples_artifact, **statistics_artifacts,
              "tuning": outputs["tuning"]}
    properties, model = run_stage("train", inputs, {**TRAIN, "epochs": 1})
    info = artifacts.read_model_info(model["model"].path)
    assert properties["tuned_params"] == best
    assert info["learning_rate"] == pytest.approx(best["learning_rate"])
    assert info["model_options"]["dropout"] == pytest.approx(best["model_options.dropout"])
    assert info["model_options"]["filters"] == best["model_options.filters"]


def test_a_killed_search_resumes_without_repeating_finished_trials(
        tmp_path, examples_artifact, statistics_artifacts):
    """Two trials finish, the process dies in the third: the next run keeps the two and runs
    one more (the dead one is recorded as failed, not counted)."""
    import logging

    from edgepipe.components.tune import stage as tune_stage

    config = tune_stage.Config.model_validate(tune_config(trials=3, epochs_per_trial=1))
    calls = []

    class Killed(BaseException):
        pass

    def objective(params, report):
        calls.append(params)
        if len(calls) == 3:
            raise Killed()
        from edgepipe.components.tune.trial import Outcome

        report(0.5 + 0.1 * len(calls), 0)
        return Outcome([0.5 + 0.1 * len(calls)], [0.5 + 0.1 * len(calls)], False, 1.0)

    with pytest.raises(Killed):
        search.search(config, objective, tmp_path, 7, logging.getLogger("test"))
    first_two = list(calls[:2])
    calls.clear()
    result = search.search(config, objective, tmp_path, 7, logging.getLogger("test"))
    assert len(calls) == 1 and result["resumed"]
    assert [trial["params"] for trial in result["trials"][:2]] == first_two
    assert [trial["number"] for trial in result["trials"]] == [0, 1, 3]  # 2 died


@pytest.mark.parametrize("changes, message", [
    ({"space": {"learnin_rate": {"uniform": [0.1, 0.2]}}}, "'learnin_rate' is not a key"),
    ({"space": {"model_options.dropuot": {"uniform": [0.1, 0.2]}}}, "unknown option"),
    ({"space": {"model_options.filters": {"choice": []}}}, "non-empty list"),
    ({"space": {"learning_rate": {"uniform": [0.01, 0.001]}}}, "min > max"),
    ({"space": {"learning_rate": {"log_uniform": [0, 0.01]}}}, "min > 0"),
    ({"space": {"learning_rate": {"normal": [0.1, 0.2]}}}, "expected one of"),
    ({"space": {"epochs": {"int": [1, 5]}}}, "cannot compare epochs"),
    ({"space": {}}, "search space is empty"),
    ({"trials": 0}, "greater than or equal to 1"),
    ({"minutes": 0}, "greater than 0"),
])
def test_bad_search_settings_are_config_errors_naming_the_key(changes, message):
    """Through the config loader, as `edgepipe run` reads them: exit 2 before anything runs."""
    from edgepipe import api

    tune = {"trials": 3, "space": SPACE, **changes}
    overrides = {f"tune.{key}": value for key, value in tune.items()}
    with pytest.raises(api.ConfigError, match=message) as raised:
        api.load_config(REPO / "configs" / "quickstart.toml", overrides=overrides)
    key = next(iter(changes["space"])) if changes.get("space") else next(iter(changes))
    assert "[tune]" in str(raised.value) and key in str(raised.value)


def test_the_report_shows_the_trials(run_stage, tuned, examples_artifact, statistics_artifacts,
                                     model_artifact, evaluation_artifact, tflite_artifact):
    import re

    _, outputs = tuned
    inputs = {"examples": examples_artifact, "statistics": statistics_artifacts["statistics"],
              "model": model_artifact, "evaluation": evaluation_artifact,
              "tflite": tflite_artifact, "tuning": outputs["tuning"]}
    _, report = run_stage("report", inputs, {})
    html = (report["report"].path / "report.html").read_text()
    table = html.split('id="tuning-trials"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r'<tr class="trial', table)) == 3
    assert "model_options.dropout" in table and "(chosen)" in table
    assert 'id="fig-tuning-trials-img"' in html
    summary = artifacts.read_report_summary(report["report"].path)
    assert summary["tuning"]["trials"] == 3
    assert summary["tuning"]["best_params"] == artifacts.read_tuning(
        outputs["tuning"].path)["best_params"]
