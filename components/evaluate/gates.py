"""The blessing gates: an absolute threshold on the task's primary metric, and a relative one
against the model the registry would be replaced with.

The metric and its direction come from the task (edgepipe.contracts.tasks): accuracy (higher
is better; the relative gate allows a drop in percentage points) or MAE (lower is better;
the relative gate allows an increase as a fraction of the baseline's). The relative gate's
baseline is the newest version of the model in the [registry] that was not pushed from this
same model (contracts.registry.baseline_version): pushing this run's model therefore does
not move the baseline, and a second run stays cached. The baseline is compared on this run's
test split: its recorded metric when it was measured on the same examples, else
re-evaluated here.
"""

from __future__ import annotations

from typing import Any, Callable

from edgepipe.contracts import artifacts, registry
from edgepipe.contracts.relative_gate import GateSpec, check_change


def bless(task, value: float, thresholds: tuple[float | None, float], settings,
          model_key: str, examples_key: str, names: list[str],
          primary_of: Callable[[str], float]) -> dict[str, Any]:
    """Both gates with their reasons; BLESSED only when every applied gate passes.

    `thresholds` = (absolute threshold or None, allowed worsening); `primary_of(version_dir)`
    measures a registry version's primary metric on the test split.
    """
    metric = task.primary
    absolute, allowed = thresholds
    gates = [absolute_gate(metric, value, absolute)]
    gates.append(relative_gate(task, value, allowed, settings, model_key, examples_key, names,
                               primary_of))
    failed = [gate for gate in gates if gate["applied"] and not gate["passed"]]
    reason = "; ".join(gate["reason"] for gate in (failed or gates) if gate["applied"]) or (
        f"no gate applied: set a threshold on {metric.name} in [evaluate], or a [registry] "
        "to compare with")
    return {"blessed": not failed, "reason": reason, "gates": gates}


def absolute_gate(metric, value: float, threshold: float | None) -> dict[str, Any]:
    if threshold is None:
        return {"name": "absolute", "applied": False, "passed": True,
                "reason": f"not applied: no threshold on {metric.name}"}
    passed = not metric.better(threshold, value) if threshold != value else True
    sign = (">=" if passed else "<") if metric.higher_is_better else ("<=" if passed else ">")
    return {"name": "absolute", "applied": True, "passed": bool(passed),
            "reason": f"{metric.name} {metric.format(value)} {sign} threshold "
                      f"{metric.format(threshold)}"}


def relative_gate(task, value: float, allowed: float, settings, model_key: str,
                  examples_key: str, names: list[str], primary_of) -> dict[str, Any]:
    """Compare with the registry's baseline version on this run's test split."""
    metric = task.primary
    unit = metric.worsening_unit
    # What push checks again under the registry's lock (contracts/relative_gate.py): an
    # accuracy drop in its own units (points / 100), an error's increase as a fraction.
    spec = GateSpec(metric.name, higher_is_better=metric.higher_is_better,
                    allowed_change=allowed / 100.0 if unit == "points" else allowed,
                    relative=unit != "points")
    gate: dict[str, Any] = {"name": "relative", "applied": False, "passed": True,
                            "metric": metric.name, f"max_worsening_{unit}": allowed,
                            "spec": spec.to_json()}
    if metric.name == "accuracy":  # the key earlier runs' summaries have
        gate["max_accuracy_drop_points"] = allowed
    if settings is None:
        return {**gate, "reason": "not applied: no [registry] configured"}
    path, name = settings.path, settings.model_name
    version = registry.baseline_version(path, name, model_key)
    if version is None:
        return {**gate, "reason": f"not applied: no earlier version of {name!r} in {path} (this "
                                  "model would be its first version)"}
    metadata = registry.read_metadata(path, name, version)
    baseline = {"model_name": name, "version": version, "run_id": metadata.get("run_id")}
    gate["baseline"] = baseline
    key = "class_names" if task.label == "class" else "target_names"
    what = "classes" if task.label == "class" else "targets"
    if metadata.get(key) not in (None, list(names)) or metadata.get("task", "classification") \
            != task.name:
        return {**gate, "reason": f"not applied: {name} v{version} predicts "
                                  f"{metadata.get('task', 'classification')} {what} "
                                  f"{metadata.get(key)}, this run's examples have "
                                  f"{list(names)}; their {metric.name} values are not "
                                  "comparable"}
    pushed = metadata.get("metrics", {}).get(metric.name)
    if metadata.get("examples_key") == examples_key and pushed is not None:
        baseline.update({metric.name: float(pushed), "source": "metadata"})
        where = f"its recorded {metric.name} on the same examples"
    else:
        try:
            baseline_value = float(primary_of(registry.version_path(path, name, version)))
        except (ValueError, KeyError, FileNotFoundError) as error:
            return {**gate, "reason": f"not applied: {name} v{version} could not be run on "
                                      f"this test split ({error})"}
        baseline.update({metric.name: baseline_value, "source": "re-evaluated"})
        where = "re-evaluated on this test split, since it was measured on other examples"
    worsening = round(metric.worsening(value, baseline[metric.name]), 6)
    passed = check_change(metric.name, value, baseline[metric.name], spec.higher_is_better,
                          spec.allowed_change, spec.relative)["passed"]
    allowance = f"{allowed:g} points" if unit == "points" else f"{allowed:.1%}"
    reason = (f"{metric.name} {metric.format(value)} is {metric.describe_worsening(worsening)} "
              f"{name} v{version} ({metric.format(baseline[metric.name])}, {where}); allowed "
              f"{'drop' if metric.higher_is_better else 'increase'} {allowance}")
    result = {**gate, "applied": True, "passed": bool(passed), f"worsening_{unit}": worsening,
              "reason": reason}
    if metric.name == "accuracy":
        result["drop_points"] = worsening
    return result


def write(evaluation_dir, blessing: dict[str, Any]) -> None:
    """The BLESSED or NOT_BLESSED marker: the verdict, then one line per gate."""
    artifacts.write_blessing(evaluation_dir, blessing["blessed"], blessing["reason"],
                             [f"{gate['name']}: {gate['reason']}" for gate in blessing["gates"]])
