"""The Model artifact (train): model.json (what the model takes and returns, and how it was
trained), history.json, the SavedModel whose serving signature takes raw inputs (saved_model/),
the Keras model file (model.keras) and TensorBoard logs (logs/). After semi-supervised
training, pseudo-label files too (edgepipe.contracts.unlabeled_artifacts)."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.contracts.artifacts.files import (WRITERS, ArtifactFileError, PathLike, read_json,
                                                write_json)

MODEL_INFO = "model.json"
HISTORY = "history.json"
KERAS_MODEL = "model.keras"
SAVED_MODEL = "saved_model"  # a folder (also in older registry versions)
LOGS = "logs"  # TensorBoard's folder
WRITERS.update(dict.fromkeys((MODEL_INFO, HISTORY, KERAS_MODEL), "train"))


def read_model_info(model_dir: PathLike) -> dict[str, Any]:
    """model.json: input_feature, input_shape, input_dtype, class_names, normalization,
    padding, vocabulary (text), and how the model was trained."""
    info = read_json(pathlib.Path(model_dir, MODEL_INFO))
    missing = sorted({"input_feature", "input_shape", "class_names"} - set(info))
    if missing:
        raise ArtifactFileError(f"{pathlib.Path(model_dir, MODEL_INFO)} lacks {missing}; "
                                "re-run the train stage.")
    return info


def write_model_info(model_dir: PathLike, info: dict[str, Any]) -> None:
    write_json(pathlib.Path(model_dir, MODEL_INFO), info)


def read_history(model_dir: PathLike) -> dict[str, list[float | None]]:
    """history.json: {metric: one value per epoch}."""
    return read_json(pathlib.Path(model_dir, HISTORY))


def write_history(model_dir: PathLike, history: dict[str, list[float | None]]) -> None:
    write_json(pathlib.Path(model_dir, HISTORY), history)
