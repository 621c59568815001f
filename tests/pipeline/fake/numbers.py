"""A source stage: writes the numbers 1..count."""

import json

from edgepipe.pipeline.stage import StageConfig

NAME = "numbers"
VERSION = 1
INPUTS: dict[str, str] = {}
OUTPUTS = {"numbers": "Numbers"}


class Config(StageConfig):
    count: int = 3


def run(inputs, outputs, config, context):
    (outputs["numbers"] / "numbers.json").write_text(json.dumps(list(range(1, config.count + 1))))
    return {"count": config.count}
