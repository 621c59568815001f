"""How a TFLite variant is scored against the Keras model, per task (edgepipe.contracts.tasks):
the task's primary metric on the test split (what the deploy policy ranks by) and how close
the variant's outputs are to Keras's. Pure numpy; looked up by task name (SCORERS)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Classification:
    """accuracy, and agreement: the share of test examples whose class matches Keras's."""

    SUMMARY = ("accuracy", "agreement")  # the scores the stage's properties list

    def __init__(self, labels, keras_outputs):
        self.labels = np.asarray(labels)
        self.keras_predictions = np.argmax(keras_outputs, axis=1)

    def keras(self) -> float:
        return float(np.mean(self.keras_predictions == self.labels))

    def __call__(self, outputs) -> dict[str, Any]:
        predictions = np.argmax(outputs, axis=1)
        return {"accuracy": float(np.mean(predictions == self.labels)),
                "agreement": float(np.mean(predictions == self.keras_predictions))}

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        return f"accuracy {scores['accuracy']:.4f}  agreement {scores['agreement']:.4f}"


class Regression:
    """mae and rmse in the data's units, and mean_abs_difference: how far the variant's values
    are from Keras's (0 for a faithful conversion)."""

    SUMMARY = ("mae", "mean_abs_difference")

    def __init__(self, targets, keras_outputs):
        self.targets = np.asarray(targets, np.float64)
        self.keras_outputs = np.asarray(keras_outputs, np.float64).reshape(self.targets.shape)

    def keras(self) -> float:
        return float(np.abs(self.keras_outputs - self.targets).mean())

    def __call__(self, outputs) -> dict[str, Any]:
        values = np.asarray(outputs, np.float64).reshape(self.targets.shape)
        return {"mae": float(np.abs(values - self.targets).mean()),
                "rmse": float(np.sqrt(((values - self.targets) ** 2).mean())),
                "mean_abs_difference": float(np.abs(values - self.keras_outputs).mean())}

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        return (f"mae {scores['mae']:.4g}  rmse {scores['rmse']:.4g}  "
                f"mean |Δ| vs Keras {scores['mean_abs_difference']:.4g}")


SCORERS = {"classification": Classification, "regression": Regression}
