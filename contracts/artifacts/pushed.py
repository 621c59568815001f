"""The PushedModel artifact (push): pushed.json, whether and where the model was pushed, or
why not. The registry version it wrote is edgepipe.contracts.registry's."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.contracts.artifacts.files import WRITERS, PathLike, read_json, write_json

PUSHED = "pushed.json"
WRITERS[PUSHED] = "push"


def write_pushed(pushed_dir: PathLike, result: dict[str, Any]) -> None:
    write_json(pathlib.Path(pushed_dir, PUSHED), result)


def read_pushed(pushed_dir: PathLike) -> dict[str, Any]:
    return read_json(pathlib.Path(pushed_dir, PUSHED))
