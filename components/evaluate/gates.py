"""The blessing gates: an absolute accuracy threshold, and a relative one against the model
the registry would be replaced with.

The relative gate's baseline is the newest version of the model in the [registry] that was not
pushed from this same model (contracts.registry.baseline_version): pushing this run's model
therefore does not move the baseline, and a second run stays cached. The baseline is compared
on this run's test split: its recorded accuracy when it was measured on the same examples,
else re-evaluated here.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgepipe.contracts import artifacts, registry
from edgepipe.contracts.relative_gate import GateSpec, check_change


def bless(accuracy: float, config, model_key: str, examples_key: str, labels, class_names,
          predict: Callable[[str], np.ndarray]) -> dict[str, Any]:
    """Both gates with their reasons; BLESSED only when every applied gate passes.

    `predict(version_dir)` returns a registry version's probabilities on the test split.
    """
    absolute_passed = accuracy >= config.min_accuracy
    gates = [{
        "name": "absolute", "applied": True, "passed": bool(absolute_passed),
        "reason": f"accuracy {accuracy:.3f} {'>=' if absolute_passed else '<'} threshold "
                  f"{config.min_accuracy:.3f}",
    }]
    gates.append(relative_gate(accuracy, config, model_key, examples_key, labels, class_names,
                               predict))
    failed = [gate for gate in gates if gate["applied"] and not gate["passed"]]
    reason = "; ".join(gate["reason"] for gate in (failed or gates) if gate["applied"])
    return {"blessed": not failed, "reason": reason, "gates": gates}


def relative_gate(accuracy: float, config, model_key: str, examples_key: str, labels,
                  class_names, predict) -> dict[str, Any]:
    """Compare with the registry's baseline version on this run's test split."""
    # What push checks again under the registry's lock (contracts/relative_gate.py).
    spec = GateSpec("accuracy", higher_is_better=True,
                    allowed_change=config.max_accuracy_drop / 100.0)
    gate: dict[str, Any] = {"name": "relative", "applied": False, "passed": True,
                            "max_accuracy_drop_points": config.max_accuracy_drop,
                            "spec": spec.to_json()}
    if config.registry is None:
        return {**gate, "reason": "not applied: no [registry] configured"}
    path, name = config.registry.path, config.registry.model_name
    version = registry.baseline_version(path, name, model_key)
    if version is None:
        return {**gate, "reason": f"not applied: no earlier version of {name!r} in {path} (this "
                                  "model would be its first version)"}
    metadata = registry.read_metadata(path, name, version)
    baseline = {"model_name": name, "version": version, "run_id": metadata.get("run_id")}
    gate["baseline"] = baseline
    if metadata.get("class_names") not in (None, list(class_names)):
        return {**gate, "reason": f"not applied: {name} v{version} predicts classes "
                                  f"{metadata['class_names']}, this run's examples have "
                                  f"{list(class_names)}; their accuracies are not comparable"}
    pushed_accuracy = metadata.get("metrics", {}).get("accuracy")
    if metadata.get("examples_key") == examples_key and pushed_accuracy is not None:
        baseline.update(accuracy=float(pushed_accuracy), source="metadata")
        where = "its recorded accuracy on the same examples"
    else:
        try:
            probabilities = predict(registry.version_path(path, name, version))
        except (ValueError, KeyError, FileNotFoundError) as error:
            return {**gate, "reason": f"not applied: {name} v{version} could not be run on "
                                      f"this test split ({error})"}
        if probabilities.shape != (len(labels), len(class_names)):
            return {**gate, "reason": f"not applied: {name} v{version} returned "
                                      f"probabilities of shape {probabilities.shape}"}
        baseline.update(accuracy=float(np.mean(probabilities.argmax(axis=1) == labels)),
                        source="re-evaluated")
        where = "re-evaluated on this test split, since it was measured on other examples"
    drop = round(100.0 * (baseline["accuracy"] - accuracy), 6)
    passed = check_change("accuracy", accuracy, baseline["accuracy"], spec.higher_is_better,
                          spec.allowed_change)["passed"]
    comparison = (f"{drop:.1f} points below" if drop > 0 else f"{-drop:.1f} points above"
                  if drop < 0 else "equal to")
    reason = (f"accuracy {accuracy:.3f} is {comparison} {name} v{version} "
              f"({baseline['accuracy']:.3f}, {where}); allowed drop "
              f"{config.max_accuracy_drop:g} points")
    return {**gate, "applied": True, "passed": bool(passed), "drop_points": drop, "reason": reason}


def write(evaluation_dir, blessing: dict[str, Any]) -> None:
    """The BLESSED or NOT_BLESSED marker: the verdict, then one line per gate."""
    artifacts.write_blessing(evaluation_dir, blessing["blessed"], blessing["reason"],
                             [f"{gate['name']}: {gate['reason']}" for gate in blessing["gates"]])
