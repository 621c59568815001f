"""A sink stage: the total of its input."""

import json

from edgepipe.pipeline.stage import StageConfig

NAME = "total"
VERSION = 1
INPUTS = {"numbers": "Numbers"}
OUTPUTS = {"total": "Total"}


class Config(StageConfig):
    pass


def run(inputs, outputs, config, context):
    total = sum(json.loads((inputs["numbers"].path / "numbers.json").read_text()))
    (outputs["total"] / "total.json").write_text(json.dumps(total))
    return {"total": total}
