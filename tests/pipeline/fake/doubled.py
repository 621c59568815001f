"""A middle stage that can be told to fail, halt the pipeline or sleep (to be killed)."""

import json
import time

from edgepipe.pipeline.spec import StageResult, StageSpec
from edgepipe.pipeline.stage import StageConfig


class Config(StageConfig):
    factor: int = 2
    fail: bool = False
    halt: str = ""
    sleep_seconds: float = 0.0


def run(inputs, outputs, config, context):
    numbers = json.loads((inputs["numbers"].path / "numbers.json").read_text())
    (outputs["doubled"] / "numbers.json").write_text(json.dumps([n * config.factor for n in numbers]))
    (outputs["doubled"] / "started").write_text(str(time.time()))
    time.sleep(config.sleep_seconds)
    if config.fail:
        raise ValueError("doubled was told to fail")
    return StageResult({"sum": sum(numbers) * config.factor}, halt=config.halt)


SPEC = StageSpec(name="doubled", version=1, config=Config, run=run,
                 inputs={"numbers": "Numbers"}, outputs={"doubled": "Numbers"})
