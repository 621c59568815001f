"""The relative gate's comparison: is a candidate's metric worse than the pushed version's by
more than the allowed change? One function for every task and metric: a metric that should be
high (accuracy) or low (MAE), and an allowed change in the metric's own units (an accuracy
drop of 0.01) or relative to the pushed value (an MAE increase of 0.05 = 5%).

Evaluate applies it when it blesses (against the registry as it was then) and push applies it
again under the registry's lock (against the registry as it is at push time), so two runs
pushing at once cannot both pass a gate that only one of them should.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class GateSpec:
    """How a candidate is compared with the newest pushed version (recorded by evaluate in
    metrics.json's blessing, read by push)."""

    metric: str
    higher_is_better: bool
    allowed_change: float  # in the metric's units, or a fraction of it when `relative`
    relative: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "GateSpec":
        return cls(str(record["metric"]), bool(record["higher_is_better"]),
                   float(record["allowed_change"]), bool(record.get("relative", False)))


def check_change(metric: str, candidate: float, baseline: float, higher_is_better: bool,
                 allowed_change: float, relative: bool = False) -> dict[str, Any]:
    """{"passed", "worse_by", "reason"}: worse_by is how much worse the candidate is than the
    baseline (negative: better), in the metric's units or, when `relative`, as a fraction of
    the baseline's magnitude; the gate passes while worse_by <= allowed_change."""
    worse_by = (baseline - candidate) if higher_is_better else (candidate - baseline)
    if relative:
        worse_by = worse_by / abs(baseline) if baseline else (math.inf if worse_by > 0 else 0.0)
    passed = worse_by <= allowed_change + 1e-9  # 0.85 - 0.84 > 0.01 in floats: not a worsening
    shown = (lambda value: f"{100 * value:.1f}%") if relative else (lambda value: f"{value:.4g}")
    direction = "higher" if higher_is_better else "lower"
    change = ("equal to" if worse_by == 0 else
              f"{shown(abs(worse_by))} {'worse than' if worse_by > 0 else 'better than'}")
    reason = (f"{metric} {candidate:.4g} is {change} {baseline:.4g} ({direction} is better); "
              f"allowed worsening {shown(allowed_change)}")
    return {"passed": bool(passed), "worse_by": float(worse_by), "reason": reason}
