"""The relative gate at push time (issue 27): two runs started at once against one empty
registry both pushed (v1 0.849, v2 0.805) and the server answered with the worse model; run
one after the other, the second was NOT_BLESSED. Push now checks the gate again under the
registry's lock, against the registry as it is then."""

from __future__ import annotations

import pytest

from edgepipe.contracts import artifacts, registry
from edgepipe.contracts.relative_gate import check_change


@pytest.fixture()
def push_inputs(examples_artifact, model_artifact, evaluation_artifact, tflite_artifact):
    return {"examples": examples_artifact, "model": model_artifact,
            "evaluation": evaluation_artifact, "tflite": tflite_artifact}


def pushed_meanwhile(folder, examples_key: str, accuracy: float) -> int:
    """Another run's push, made after this run's evaluation saw an empty registry."""
    def fill(draft):
        (draft / "model.tflite").write_bytes(b"another run's model")

    metadata = {"model_key": "another-run", "examples_key": examples_key,
                "metrics": {"accuracy": accuracy}}
    return registry.publish(folder, "tests", fill, metadata)["version"]


def test_a_push_that_would_break_the_gate_is_refused_under_the_lock(
        run_stage, push_inputs, tmp_path):
    evaluation = push_inputs["evaluation"].path
    metrics = artifacts.read_metrics(evaluation)
    relative = [gate for gate in metrics["blessing"]["gates"] if gate["name"] == "relative"]
    assert relative and not relative[0]["applied"]  # evaluated against no registry
    better = min(1.0, metrics["accuracy"] + 0.05)
    folder = tmp_path / "registry"
    version = pushed_meanwhile(folder, push_inputs["examples"].key, better)
    config = {"registry": {"path": str(folder), "model_name": "tests"}}
    properties, _ = run_stage("push", push_inputs, config)
    assert properties["pushed"] is False
    assert "relative gate at push time" in properties["reason"]
    assert f"tests v{version}" in properties["reason"] and "worse than" in properties["reason"]
    assert registry.list_versions(folder, "tests") == [version]  # nothing was added


def test_a_push_passes_when_the_version_pushed_meanwhile_is_worse(run_stage, push_inputs,
                                                                 tmp_path):
    metrics = artifacts.read_metrics(push_inputs["evaluation"].path)
    folder = tmp_path / "registry"
    pushed_meanwhile(folder, push_inputs["examples"].key, metrics["accuracy"] - 0.05)
    properties, _ = run_stage("push", push_inputs,
                              {"registry": {"path": str(folder), "model_name": "tests"}})
    assert properties["pushed"] and properties["version"] == 2


def test_a_version_measured_on_other_examples_refuses_the_push(run_stage, push_inputs,
                                                              tmp_path):
    folder = tmp_path / "registry"
    pushed_meanwhile(folder, "other-examples", 0.0)
    properties, _ = run_stage("push", push_inputs,
                              {"registry": {"path": str(folder), "model_name": "tests"}})
    assert properties["pushed"] is False and "measured on other examples" in properties["reason"]
    assert "run the pipeline again" in properties["reason"]


@pytest.mark.parametrize("candidate, baseline, higher, allowed, relative, passed", [
    (0.805, 0.849, True, 0.01, False, False),  # accuracy 4.4 points below, 1 allowed
    (0.845, 0.849, True, 0.01, False, True),
    (0.85, 0.84, True, 0.0, False, True),      # better
    (1.04, 1.0, False, 0.05, True, True),      # MAE 4% higher, 5% allowed
    (1.06, 1.0, False, 0.05, True, False),
    (0.9, 1.0, False, 0.0, True, True),        # MAE lower: better
])
def test_check_change_follows_the_metrics_direction(candidate, baseline, higher, allowed,
                                                    relative, passed):
    result = check_change("metric", candidate, baseline, higher, allowed, relative)
    assert result["passed"] is passed
    assert ("worse than" in result["reason"]) == (result["worse_by"] > 0)
