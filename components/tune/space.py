"""The search space of `[tune.space]`: dotted [train] keys -> one distribution each.

    "learning_rate" = {log_uniform = [1e-4, 1e-2]}       a float, uniform in log space
    "model_options.dropout" = {uniform = [0.1, 0.5]}      a float
    "model_options.dense_units" = {int = [32, 256]}       an integer, both ends included
    "model_options.filters" = {choice = [[16, 32], [32, 64]]}   one of the values, any TOML

`check` validates a space against the [train] config before anything runs (an unknown key,
an empty choice, min > max, a value the train config refuses: ValueError naming the key);
`suggest` draws a trial's values from an Optuna trial, and `defaults` gives the config's own
values for the first trial. Choices are handed to Optuna as JSON
strings (it takes only scalars as categories) and decoded back.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edgepipe.components.shared import tuned_config

KINDS = ("log_uniform", "uniform", "int", "choice")
NOT_TUNABLE = {"epochs": "a trial trains [tune] epochs_per_trial epochs, so the search cannot "
               "compare epochs; set [train] epochs yourself"}


def check(space: dict[str, Any], train) -> None:
    """Raise ValueError naming the first key that cannot be searched."""
    if not space:
        raise ValueError("the search space is empty: add [tune.space] entries, e.g. "
                         '"learning_rate" = {log_uniform = [1e-4, 1e-2]}')
    for key, distribution in space.items():
        try:
            tuned_config.check_key(train, key)
            if key in NOT_TUNABLE:
                raise ValueError(NOT_TUNABLE[key])
            values = _candidates(distribution)
            for value in values:
                tuned_config.apply(train, {key: value}, f"the value {value!r}")
        except ValueError as error:
            raise ValueError(f"[tune.space] {key!r}: {error}") from None


def _candidates(distribution: Any) -> list[Any]:
    """The values the train config must accept: both ends of a range, every choice."""
    if not isinstance(distribution, dict) or len(distribution) != 1 or (
            next(iter(distribution)) not in KINDS):
        raise ValueError(f"expected one of {{{' | '.join(f'{kind} = [...]' for kind in KINDS)}}}"
                         f", got {distribution!r}")
    (kind, values), = distribution.items()
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise ValueError("choice needs a non-empty list of values, e.g. choice = [32, 64]")
        return values
    if not isinstance(values, list) or len(values) != 2 or not all(
            isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        raise ValueError(f"{kind} needs [min, max] (two numbers), got {values!r}")
    low, high = values
    if low > high:
        raise ValueError(f"{kind} range [{low}, {high}] has min > max")
    if kind == "int" and not all(isinstance(value, int) for value in values):
        raise ValueError(f"int needs two integers, got {values!r}")
    if kind == "log_uniform" and low <= 0:
        raise ValueError(f"log_uniform needs min > 0, got {low}")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"{kind} needs finite bounds, got {values!r}")
    return [low, high]


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    """A trial's value of every key, drawn by Optuna."""
    params = {}
    for key, distribution in space.items():
        (kind, values), = distribution.items()
        if kind == "log_uniform":
            params[key] = trial.suggest_float(key, *values, log=True)
        elif kind == "uniform":
            params[key] = trial.suggest_float(key, *values)
        elif kind == "int":
            params[key] = trial.suggest_int(key, *values)
        else:
            chosen = trial.suggest_categorical(key, [json.dumps(value) for value in values])
            params[key] = json.loads(chosen)
    return params


def defaults(space: dict[str, Any], train) -> dict[str, Any]:
    """The [train] config's own values (a model option left out: the builder's default) of
    the keys whose distribution holds them, as Optuna parameters: the search's first trial,
    so the best trial is never worse than the config as written (on the trial metric)."""
    from edgepipe import models

    written = train.model_dump()
    written["model_options"] = {**models.option_defaults(train.model), **train.model_options}
    found = {}
    for key, distribution in space.items():
        value = written
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        (kind, values), = distribution.items()
        if kind == "choice":
            if value in values:
                found[key] = json.dumps(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and (
                values[0] <= value <= values[1]) and (kind != "int" or value == int(value)):
            found[key] = int(value) if kind == "int" else float(value)
    return found


def decode(trial_params: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    """Optuna's stored parameters (choices as JSON strings) as config values."""
    return {key: json.loads(value) if "choice" in space.get(key, {}) else value
            for key, value in trial_params.items()}
