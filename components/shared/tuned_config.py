"""Parameters over a stage config: {"learning_rate": 3e-3, "model_options.dropout": 0.2}
replaces those values of a train config (dotted keys reach into table keys such as
model_options). The tune stage makes each trial's config so, and the train stage its config
from the tune stage's best parameters; the result is validated like the config file.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic


def apply(config, params: dict[str, Any], source: str = "the parameters"):
    """A validated copy of `config` with `params` (dotted keys) in place."""
    data = config.model_dump()
    for dotted, value in params.items():
        keys = dotted.split(".")
        table = data
        for key in keys[:-1]:
            if not isinstance(table.get(key), dict):
                table[key] = {} if table.get(key) is None else table[key]
            if not isinstance(table[key], dict):
                raise ValueError(f"{source}: {dotted!r}: {key} is not a table.")
            table = table[key]
        table[keys[-1]] = copy.deepcopy(value)
    try:
        return type(config).model_validate(data)
    except pydantic.ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(part) for part in problem['loc'])}: "
                             f"{problem['msg'].removeprefix('Value error, ')}"
                             for problem in error.errors())
        raise ValueError(f"{source} is refused: {problems}") from None


def check_key(config, dotted: str) -> None:
    """A dotted key that `apply` can set: a field of the config, or `<table field>.<key>`."""
    keys = dotted.split(".")
    fields = type(config).model_fields
    if keys[0] not in fields or not all(keys):
        raise ValueError(f"{dotted!r} is not a key of the section (its keys: "
                         f"{', '.join(sorted(fields))}; table keys as e.g. "
                         "'model_options.dropout').")
    if len(keys) > 1 and not isinstance(getattr(config, keys[0]), dict):
        raise ValueError(f"{dotted!r}: {keys[0]} is not a table; write {keys[0]!r} alone.")
    if len(keys) > 2:
        raise ValueError(f"{dotted!r}: at most one dot, as in 'model_options.dropout'.")
