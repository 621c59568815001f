"""An optional stage (tune) and an optional input (train's and report's "tuning"): the DAG has
them only when the config has [tune], every cache key is as before without it, and the wiring
check still catches a missing or unknown input."""

from __future__ import annotations

import dataclasses

import pytest

from edgepipe.pipeline import config as config_module
from edgepipe.pipeline import dag, runner
from tests.conftest import REPO

QUICKSTART = REPO / "configs" / "quickstart.toml"
TUNE = {"tune.trials": 3, "tune.space": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}}


def load(overrides=()):
    return config_module.load(QUICKSTART, dag.specs(), overrides=overrides)


def test_without_tune_the_pipeline_is_the_one_without_a_tune_stage():
    config = load()
    assert "tune" not in config.stages
    steps = runner.plan(config)
    assert [step.node.stage for step in steps] == [
        "ingest", "statistics", "train", "evaluate", "quantize", "report", "push"]
    by_stage = {step.node.stage: step for step in steps}
    assert set(by_stage["train"].inputs) == {"examples", "statistics", "schema"}
    assert set(by_stage["train"].parts["inputs"]) == {"examples", "statistics", "schema"}
    assert "tuning" not in by_stage["report"].inputs
    assert "data" not in by_stage["train"].parts  # a built-in model has no fingerprint


def test_with_tune_the_stage_runs_between_statistics_and_train_and_feeds_train():
    plain = {step.node.stage: step for step in runner.plan(load())}
    tuned = runner.plan(load(TUNE))
    assert [step.node.stage for step in tuned][:4] == ["ingest", "statistics", "tune", "train"]
    by_stage = {step.node.stage: step for step in tuned}
    assert by_stage["train"].inputs["tuning"].key == by_stage["tune"].key
    assert by_stage["report"].inputs["tuning"].key == by_stage["tune"].key
    for stage in ("ingest", "statistics"):  # upstream of tune: the same keys
        assert by_stage[stage].key == plain[stage].key
    for stage in ("train", "evaluate", "quantize", "report", "push"):
        assert by_stage[stage].key != plain[stage].key


def test_tunes_key_follows_train_but_not_train_epochs_when_epochs_per_trial_is_set():
    def tune_key(**overrides):
        config = load({**TUNE, "tune.epochs_per_trial": 2, **overrides})
        return next(step.key for step in runner.plan(config) if step.node.stage == "tune")

    key = tune_key()
    assert tune_key(**{"train.epochs": 3}) == key
    assert tune_key(**{"train.batch_size": 32}) != key
    assert tune_key(**{"tune.trials": 4}) != key


def test_the_tune_section_gets_the_validated_train_section_not_a_key_of_its_own():
    config = load(TUNE)
    assert config.stages["tune"].train == config.stages["train"]
    with pytest.raises(config_module.ConfigError, match=r"\[tune\] train: unknown key"):
        load({**TUNE, "tune.train": {"epochs": 1}})


def test_the_wiring_check_still_catches_a_missing_and_an_unknown_input():
    nodes = list(dag.CLASSIFICATION)
    train = next(index for index, node in enumerate(nodes) if node.stage == "train")
    without_schema = dict(nodes[train].inputs)
    del without_schema["schema"]
    broken = nodes.copy()
    broken[train] = dataclasses.replace(nodes[train], inputs=without_schema)
    with pytest.raises(runner.WiringError, match="'train' declares inputs"):
        runner.check_wiring(broken)
    evaluate = next(index for index, node in enumerate(nodes) if node.stage == "evaluate")
    extra = nodes.copy()
    extra[evaluate] = dataclasses.replace(
        nodes[evaluate], inputs={**nodes[evaluate].inputs, "tuning": dag.TUNING})
    with pytest.raises(runner.WiringError, match="'evaluate' declares inputs"):
        runner.check_wiring(extra)
    runner.check_wiring(dag.CLASSIFICATION)  # the full DAG, tune included, is consistent


def test_a_required_input_from_a_left_out_stage_is_a_wiring_error():
    """dag.active drops only what a left-out stage fed; a stage that needs it (not optional)
    is then reported, naming the input."""
    nodes = [dataclasses.replace(node, inputs={**node.inputs, "examples": ("tune", "tuning")})
             if node.stage == "evaluate" else node for node in dag.CLASSIFICATION]
    active = dag.active(load().stages, nodes)
    with pytest.raises(runner.WiringError, match="'evaluate' declares inputs"):
        runner.check_wiring(active)
