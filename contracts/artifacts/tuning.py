"""The Tuning artifact (tune): tuning.json, the metric, its direction, the search space, every
trial (parameters, value, validation accuracy, seconds, pruned, state) and the best
parameters."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.contracts.artifacts.files import (WRITERS, ArtifactFileError, PathLike, read_json,
                                                write_json)

TUNING = "tuning.json"
WRITERS[TUNING] = "tune"


TRIAL_FIELDS = ("number", "params", "value", "val_accuracy", "seconds", "pruned", "state")


def write_tuning(tuning_dir: PathLike, tuning: dict[str, Any]) -> None:
    """tuning.json: metric, direction, space, trials [{number, params, value, val_accuracy,
    seconds, pruned, state, epochs, values}], best_trial, best_params, best_value."""
    write_json(pathlib.Path(tuning_dir, TUNING), tuning)


def read_tuning(tuning_dir: PathLike) -> dict[str, Any]:
    """The search: every trial and the best parameters (dotted [train] keys -> values)."""
    path = pathlib.Path(tuning_dir, TUNING)
    tuning = read_json(path)
    missing = sorted({"metric", "trials", "best_params", "best_value"} - set(tuning)) + [
        f"trials[{index}].{field}" for index, trial in enumerate(tuning.get("trials", []))
        for field in TRIAL_FIELDS if field not in trial]
    if missing or not isinstance(tuning["best_params"], dict):
        raise ArtifactFileError(f"{path} lacks {missing or ['best_params']}; re-run tune.")
    return tuning
