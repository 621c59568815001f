"""The Evaluation artifact (evaluate): metrics.json, confusion.json, singled_out.json (the
examples the report's galleries show), predictions.csv (one row per test example) and the
verdict, a marker file BLESSED or NOT_BLESSED whose first line is the reason. With unlabelled
data, labeling_queue.csv too (edgepipe.contracts.unlabeled_artifacts)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Iterable

from edgepipe.contracts.artifacts.files import (WRITERS, ArtifactFileError, PathLike, read_json,
                                                write_csv, write_json)

METRICS = "metrics.json"
CONFUSION = "confusion.json"
SINGLED_OUT = "singled_out.json"
PREDICTIONS = "predictions.csv"
# Keyword models (audio examples): misses and false accepts on a stream of test clips.
STREAMING = "streaming.json"
BLESSED, NOT_BLESSED = "BLESSED", "NOT_BLESSED"
WRITERS.update(dict.fromkeys((METRICS, CONFUSION, SINGLED_OUT, PREDICTIONS, STREAMING),
                             "evaluate"))


@dataclasses.dataclass(frozen=True)
class Blessing:
    blessed: bool
    reason: str  # the verdict's reason: the first line of the marker file
    details: str  # one line per gate


def write_evaluation(evaluation_dir: PathLike, metrics: dict, class_names: list[str],
                     confusion: dict, singled_out: dict,
                     prediction_rows: Iterable[dict]) -> None:
    folder = pathlib.Path(evaluation_dir)
    write_json(folder / METRICS, metrics)
    write_json(folder / CONFUSION, {"class_names": list(class_names), **confusion})
    write_json(folder / SINGLED_OUT, singled_out)
    write_csv(folder / PREDICTIONS, ("id", "label", "prediction", "confidence", "entropy"),
              ([row["id"], row["label"], row["prediction"], f"{row['confidence']:.6f}",
                f"{row['entropy']:.6f}"] for row in prediction_rows))


def write_regression_evaluation(evaluation_dir: PathLike, metrics: dict, singled_out: dict,
                                prediction_rows: Iterable[dict],
                                target_names: list[str]) -> None:
    """A regression model's evaluation (no confusion matrix): predictions.csv has a target and
    a prediction column per target, and the absolute error (mean over the targets)."""
    write_json(pathlib.Path(evaluation_dir, METRICS), metrics)
    write_json(pathlib.Path(evaluation_dir, SINGLED_OUT), singled_out)
    header = ("id", *target_names, *(f"predicted_{name}" for name in target_names), "abs_error")
    write_csv(pathlib.Path(evaluation_dir, PREDICTIONS), header, (
        [row["id"], *(f"{value:.6g}" for value in [*row["target"], *row["prediction"]]),
         f"{row['abs_error']:.6g}"] for row in prediction_rows))


def read_metrics(evaluation_dir: PathLike) -> dict[str, Any]:
    return read_json(pathlib.Path(evaluation_dir, METRICS))


def read_confusion(evaluation_dir: PathLike) -> dict[str, Any]:
    """{"class_names": [...], "matrix": rows = true class, columns = predicted class}; above
    100 classes {"class_names": [...], "cells": [[true, predicted, count], ...]} instead (the
    non-zero cells: the file grows with the examples, not with the classes squared)."""
    return read_json(pathlib.Path(evaluation_dir, CONFUSION))


def read_singled_out(evaluation_dir: PathLike) -> dict[str, list[dict[str, Any]]]:
    return read_json(pathlib.Path(evaluation_dir, SINGLED_OUT))


def write_streaming(evaluation_dir: PathLike, streaming: dict[str, Any]) -> None:
    write_json(pathlib.Path(evaluation_dir, STREAMING), streaming)


def read_streaming(evaluation_dir: PathLike) -> dict[str, Any] | None:
    """The streaming figures, or None for a model that is not a keyword spotter."""
    path = pathlib.Path(evaluation_dir, STREAMING)
    return read_json(path) if path.is_file() else None


def write_blessing(evaluation_dir: PathLike, blessed: bool, reason: str,
                   details: list[str]) -> None:
    marker = BLESSED if blessed else NOT_BLESSED
    text = reason + "\n\n" + "".join(f"- {line}\n" for line in details)
    pathlib.Path(evaluation_dir, marker).write_text(text, encoding="utf-8")


def read_blessing(evaluation_dir: PathLike) -> Blessing:
    """The verdict evaluate wrote: exactly one of BLESSED or NOT_BLESSED must exist."""
    folder = pathlib.Path(evaluation_dir)
    found = [name for name in (BLESSED, NOT_BLESSED) if (folder / name).is_file()]
    if len(found) != 1:
        raise ArtifactFileError(
            f"{folder}: expected exactly one of {BLESSED} or {NOT_BLESSED}, found {found or 'none'}"
            "; pass the evaluation artifact of the evaluate stage, or re-run it.")
    reason, _, details = (folder / found[0]).read_text(encoding="utf-8").strip().partition("\n")
    return Blessing(found[0] == BLESSED, reason.strip(), details.strip())


def write_detection_evaluation(evaluation_dir: PathLike, metrics: dict, singled_out: dict,
                               prediction_rows: Iterable[dict]) -> None:
    """A detector's evaluation: predictions.csv has one row per detection (boxes as fractions
    of the model input, whether it matched a true box of its class at IoU 0.5)."""
    write_json(pathlib.Path(evaluation_dir, METRICS), metrics)
    write_json(pathlib.Path(evaluation_dir, SINGLED_OUT), singled_out)
    write_csv(pathlib.Path(evaluation_dir, PREDICTIONS),
              ("id", "class", "score", "ymin", "xmin", "ymax", "xmax", "matched"),
              ([row["id"], row["class"], f"{row['score']:.6f}",
                *(f"{value:.5f}" for value in row["box"]), int(row["matched"])]
               for row in prediction_rows))


def write_centroid_evaluation(evaluation_dir: PathLike, metrics: dict, singled_out: dict,
                              prediction_rows: Iterable[dict]) -> None:
    """A centroid detector's evaluation: predictions.csv has one row per predicted centroid
    (y, x as fractions of the model input; whether it matched a true box centre of its class
    within one grid cell, contracts/centroids.py)."""
    write_json(pathlib.Path(evaluation_dir, METRICS), metrics)
    write_json(pathlib.Path(evaluation_dir, SINGLED_OUT), singled_out)
    write_csv(pathlib.Path(evaluation_dir, PREDICTIONS), ("id", "class", "score", "y", "x",
                                                          "matched"),
              ([row["id"], row["class"], f"{row['score']:.6f}", f"{row['y']:.5f}",
                f"{row['x']:.5f}", int(row["matched"])] for row in prediction_rows))
