"""How the server answers a predict request, per task (edgepipe.contracts.tasks): TF Serving's
REST `predict` body ("predictions" in row format, "outputs" in columnar format), plus the
fields a task adds for convenience. Looked up by the model's task, never by branches."""

from __future__ import annotations

import numpy as np


def classification(outputs: np.ndarray, names: list[str], key: str) -> dict:
    """Class probabilities, and the most probable class with its probability."""
    best = outputs.argmax(axis=1)
    return {key: outputs.tolist(), "classes": [names[index] for index in best],
            "confidences": outputs[range(len(best)), best].tolist()}


def regression(outputs: np.ndarray, names: list[str], key: str) -> dict:
    """The predicted values as floats, one list per instance (one value per target, named
    in the order of "targets"), in the data's own units."""
    return {key: np.asarray(outputs, np.float64).tolist(), "targets": list(names)}


ANSWERS = {"classification": classification, "regression": regression}


def answer(task_name: str, outputs: np.ndarray, names: list[str], columnar: bool) -> dict:
    return ANSWERS[task_name](outputs, names, "outputs" if columnar else "predictions")
