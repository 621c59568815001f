"""A sink stage: the total of its input."""

import json

from edgepipe.pipeline.spec import StageSpec
from edgepipe.pipeline.stage import StageConfig


class Config(StageConfig):
    pass


def run(inputs, outputs, config, context):
    total = sum(json.loads((inputs["numbers"].path / "numbers.json").read_text()))
    (outputs["total"] / "total.json").write_text(json.dumps(total))
    # What the runner told it of the stages before it (tests check the context, not this)
    (outputs["total"] / "upstream.json").write_text(json.dumps(
        [[run.stage, run.key, run.cached, run.resumed] for run in context.upstream.values()]))
    return {"total": total}


SPEC = StageSpec(name="total", version=1, config=Config, run=run,
                 inputs={"numbers": "Numbers"}, outputs={"total": "Total"})
