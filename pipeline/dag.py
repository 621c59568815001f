"""The pipeline's wiring: which stage reads which artifact. Orchestration only, no ML.

Each node names a stage module in components/ and maps its input names to (producing stage,
output name). The order is a valid topological order; the runner follows it.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType


@dataclasses.dataclass(frozen=True)
class Node:
    stage: str
    inputs: dict[str, tuple[str, str]]

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(f"components.{self.stage}")


EXAMPLES = ("ingest", "examples")
STATISTICS = ("statistics", "statistics")
SCHEMA = ("statistics", "schema")
MODEL = ("train", "model")
EVALUATION = ("evaluate", "evaluation")
TFLITE = ("quantize", "tflite")

CLASSIFICATION = (
    Node("ingest", {}),
    Node("statistics", {"examples": EXAMPLES}),
    Node("train", {"examples": EXAMPLES, "statistics": STATISTICS, "schema": SCHEMA}),
    Node("evaluate", {"examples": EXAMPLES, "model": MODEL}),
    Node("quantize", {"examples": EXAMPLES, "model": MODEL}),
    Node(
        "report",
        {
            "examples": EXAMPLES,
            "statistics": STATISTICS,
            "model": MODEL,
            "evaluation": EVALUATION,
            "tflite": TFLITE,
        },
    ),
    Node("push", {"model": MODEL, "evaluation": EVALUATION, "tflite": TFLITE, "examples": EXAMPLES}),
)


def stage_modules(nodes=CLASSIFICATION) -> dict[str, ModuleType]:
    return {node.stage: node.module for node in nodes}


def downstream(stage: str, nodes=CLASSIFICATION) -> list[str]:
    """Stages that read, directly or not, what `stage` writes (for --set explanations)."""
    affected = {stage}
    for node in nodes:
        if any(producer in affected for producer, _ in node.inputs.values()):
            affected.add(node.stage)
    return [node.stage for node in nodes if node.stage in affected and node.stage != stage]
