"""The relative gate again, at push time, under the registry's lock.

Evaluate compared the model with the newest pushed version as the registry was then; another
run may have pushed since (two `edgepipe run` started at once against one registry both saw
it empty). So the push compares once more with the newest version not pushed from this model,
as the registry is when the version number is taken, and refuses a model that would break
the gate evaluate recorded (metrics.json: blessing.gates[relative].spec).
"""

from __future__ import annotations

from typing import Any, Callable

from edgepipe.contracts import registry
from edgepipe.contracts.relative_gate import GateSpec, check_change


def push_time_check(settings, metrics: dict[str, Any], model_key: str,
                    examples_key: str) -> Callable[[], str | None]:
    """check() for registry.publish: a refusal reason, or None to push."""
    gate = next((gate for gate in (metrics.get("blessing") or {}).get("gates", ())
                 if gate.get("name") == "relative"), None)

    def check() -> str | None:
        if gate is None or "spec" not in gate:  # evaluated before the gate recorded its spec
            return None
        spec = GateSpec.from_json(gate["spec"])
        path, name = settings.path, settings.model_name
        version = registry.baseline_version(path, name, model_key)
        evaluated = (gate.get("baseline") or {}).get("version")
        if version is None or version == evaluated:
            return None  # the registry is as evaluate saw it: its verdict stands
        pushed = registry.read_metadata(path, name, version)
        candidate = metrics.get(spec.metric)
        baseline = (pushed.get("metrics") or {}).get(spec.metric)
        if pushed.get("examples_key") != examples_key or baseline is None or candidate is None:
            return (f"{name} v{version} was pushed after this model was evaluated (against "
                    f"{'v%s' % evaluated if evaluated else 'no earlier version'}) and was "
                    "measured on other examples: the relative gate cannot be checked; run "
                    "the pipeline again so that evaluate compares with it")
        result = check_change(spec.metric, float(candidate), float(baseline),
                              spec.higher_is_better, spec.allowed_change, spec.relative)
        if result["passed"]:
            return None
        return (f"relative gate at push time: {name} v{version} was pushed after this model "
                f"was evaluated, and {result['reason']} (v{version}'s, on the same test split)")

    return check
