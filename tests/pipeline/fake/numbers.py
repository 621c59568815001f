"""A source stage: writes the numbers 1..count."""

import json

from edgepipe.pipeline.spec import StageSpec
from edgepipe.pipeline.stage import StageConfig


class Config(StageConfig):
    count: int = 3


def run(inputs, outputs, config, context):
    (outputs["numbers"] / "numbers.json").write_text(json.dumps(list(range(1, config.count + 1))))
    return {"count": config.count}


SPEC = StageSpec(name="numbers", version=1, config=Config, run=run,
                 outputs={"numbers": "Numbers"})
