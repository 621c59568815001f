"""A middle stage that can be told to fail, halt the pipeline or sleep (to be killed)."""

import json
import time

from edgepipe.pipeline.stage import StageConfig

NAME = "doubled"
VERSION = 1
INPUTS = {"numbers": "Numbers"}
OUTPUTS = {"doubled": "Numbers"}


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
    return {"sum": sum(numbers) * config.factor, **({"halt": config.halt} if config.halt else {})}
