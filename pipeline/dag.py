"""The pipeline's wiring: which stage reads which artifact. Orchestration only, no ML.

Each node names a stage module and maps its input names to (producing stage, output name).
The order is a valid topological order; the runner follows it, and `runner.plan` checks that
every input's artifact kind is what the producing stage declares before anything runs.

Each stage module declares its contract in one StageSpec (pipeline/spec.py); `Node.spec` loads
and checks it, and `runner.check_wiring` checks the DAG against the specs before anything runs.

A stage whose spec says optional (tune) is in a pipeline only when its config has the
stage's section: `active` leaves its node out otherwise, and drops the inputs it would feed
(train's "tuning"), which the reading stage must declare as optional_inputs (runner's wiring
check says so otherwise). Without [tune], the pipeline, and every cache key, is the one of a
DAG that never had a tune stage.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from edgepipe.pipeline.spec import SpecError, StageSpec, spec_of


@dataclasses.dataclass(frozen=True)
class Node:
    stage: str
    module_name: str
    inputs: dict[str, tuple[str, str]]

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @property
    def spec(self) -> StageSpec:
        """The stage's checked declaration; SpecError when its name is not the node's."""
        spec = spec_of(self.module)
        if spec.name != self.stage:
            raise SpecError(f"{self.module_name}.SPEC is named {spec.name!r}, but the DAG runs it "
                            f"as stage {self.stage!r}; make them agree.")
        return spec


def component(stage: str) -> str:
    """The module of a built-in stage: edgepipe.components.<stage>.stage."""
    return f"edgepipe.components.{stage}.stage"


EXAMPLES = ("ingest", "examples")
STATISTICS = ("statistics", "statistics")
SCHEMA = ("statistics", "schema")
TUNING = ("tune", "tuning")
MODEL = ("train", "model")
EVALUATION = ("evaluate", "evaluation")
TFLITE = ("quantize", "tflite")

CLASSIFICATION = (
    Node("ingest", component("ingest"), {}),
    Node("statistics", component("statistics"), {"examples": EXAMPLES}),
    Node("tune", component("tune"), {"examples": EXAMPLES, "statistics": STATISTICS}),
    Node("train", component("train"),
         {"examples": EXAMPLES, "statistics": STATISTICS, "schema": SCHEMA, "tuning": TUNING}),
    Node("evaluate", component("evaluate"), {"examples": EXAMPLES, "model": MODEL}),
    Node("quantize", component("quantize"), {"examples": EXAMPLES, "model": MODEL}),
    Node("report", component("report"), {
        "examples": EXAMPLES, "statistics": STATISTICS, "model": MODEL,
        "evaluation": EVALUATION, "tflite": TFLITE, "tuning": TUNING,
    }),
    Node("push", component("push"),
         {"model": MODEL, "evaluation": EVALUATION, "tflite": TFLITE, "examples": EXAMPLES}),
)


def specs(nodes=CLASSIFICATION) -> dict[str, StageSpec]:
    """{stage name: its checked StageSpec}, in DAG order."""
    return {node.stage: node.spec for node in nodes}


def active(stages, nodes=CLASSIFICATION) -> tuple[Node, ...]:
    """The nodes of the stages a config has (`stages`: its validated stage sections; an
    optional stage without one is left out), without the inputs that a left-out stage would
    have fed."""
    kept = [node for node in nodes if node.stage in stages]
    names = {node.stage for node in kept}
    return tuple(
        dataclasses.replace(node, inputs={name: source for name, source in node.inputs.items()
                                          if source[0] in names})
        for node in kept)


def downstream(stage: str, nodes=CLASSIFICATION) -> list[str]:
    """Stages that read, directly or not, what `stage` writes (for --set explanations)."""
    affected = {stage}
    for node in nodes:
        if any(producer in affected for producer, _ in node.inputs.values()):
            affected.add(node.stage)
    return [node.stage for node in nodes if node.stage in affected and node.stage != stage]


def upstream(stage: str, nodes=CLASSIFICATION) -> list[str]:
    """Stages whose artifacts `stage` reads, directly or not, in DAG order."""
    by_name = {node.stage: node for node in nodes}
    needed: set[str] = set()
    pending = [stage]
    while pending:
        for producer, _ in by_name[pending.pop()].inputs.values():
            if producer not in needed:
                needed.add(producer)
                pending.append(producer)
    return [node.stage for node in nodes if node.stage in needed]
