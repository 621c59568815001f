"""The files of every artifact kind: one reader and one writer per file, for every consumer.

Stages, the report, push and the model server read and write artifact files only through
these functions, so a format has one definition and every reader is equally strict: a missing
or unreadable file is an error that names it and the stage that writes it. JSON is written
through a temporary file and a rename, so a reader (or a resumed run) never sees half a file.

    Examples     quarantine/records.jsonl (the TFDS dataset itself: components/shared/examples_io)
    Statistics   statistics.json, anomalies.json, vocabulary.txt (statistics.pb and
                 schema.pbtxt: components/statistics)
    Model        model.json (what the model takes and returns), history.json
    Evaluation   metrics.json, confusion.json, singled_out.json, predictions.csv and the
                 blessing marker BLESSED or NOT_BLESSED
    TFLiteModels variants.json, deployable.json (the variant to ship, chosen by quantize)
    Report       summary.json
    PushedModel  pushed.json

The tune stage's tuning.json has its reader and writer in tuning_artifacts.py; the files about
unlabelled data (unlabeled_sources.jsonl, pseudo_labels.json, labeling_queue.csv) in
unlabeled_artifacts.py.
Standard library only: the serving image reads model.json through here too.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
from typing import Any, Iterable

from edgepipe.contracts import storage

PathLike = str | os.PathLike

MODEL_INFO = "model.json"
HISTORY = "history.json"
METRICS = "metrics.json"
CONFUSION = "confusion.json"
SINGLED_OUT = "singled_out.json"
PREDICTIONS = "predictions.csv"
BLESSED, NOT_BLESSED = "BLESSED", "NOT_BLESSED"
VARIANTS = "variants.json"
DEPLOYABLE = "deployable.json"
STATISTICS = "statistics.json"
ANOMALIES = "anomalies.json"
QUARANTINE = pathlib.PurePosixPath("quarantine", "records.jsonl")
REPORT_SUMMARY = "summary.json"
PUSHED = "pushed.json"

# Which stage writes each file: error messages say what to re-run (tuning_artifacts.py and
# unlabeled_artifacts.py add theirs).
WRITERS = {MODEL_INFO: "train", HISTORY: "train", METRICS: "evaluate", CONFUSION: "evaluate",
           SINGLED_OUT: "evaluate", PREDICTIONS: "evaluate", VARIANTS: "quantize",
           DEPLOYABLE: "quantize", STATISTICS: "statistics", ANOMALIES: "statistics",
           str(QUARANTINE): "ingest", REPORT_SUMMARY: "report", PUSHED: "push"}


class ArtifactFileError(ValueError):
    """An artifact file is missing or unreadable; the message names it and what to re-run."""


def _at(folder: PathLike, *names: str | os.PathLike) -> pathlib.Path | str:
    """A file of an artifact folder: a Path, or a URI (str) in an object-store folder."""
    if storage.is_remote(folder):
        return storage.join(folder, *(pathlib.PurePath(name).as_posix() for name in names))
    return pathlib.Path(folder, *names)


def text(path: PathLike) -> str:
    """An artifact file's text (path or URI); when missing, an ArtifactFileError naming it."""
    try:
        return storage.read_text(path)
    except FileNotFoundError:
        raise ArtifactFileError(
            f"{path} is missing: the artifact is incomplete; re-run the "
            f"{WRITERS.get(os.path.basename(path), 'stage that writes it')} stage.") from None


def read_json(path: PathLike) -> Any:
    """A JSON file of an artifact; ArtifactFileError naming it when missing or torn."""
    path = path if storage.is_remote(path) else pathlib.Path(path)
    rerun = f"re-run the {WRITERS.get(os.path.basename(path), 'stage that writes it')} stage"
    try:
        text = storage.read_text(path)
    except FileNotFoundError:
        raise ArtifactFileError(f"{path} is missing: the artifact is incomplete; {rerun}.") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise ArtifactFileError(f"{path} is not valid JSON ({error}); {rerun}.") from None


def write_json(path: PathLike, data: Any) -> None:
    """Write JSON through a temporary file and a rename: readers never see half a file (on an
    object store one upload is atomic by itself)."""
    if storage.is_remote(path):
        storage.write_text(path, json.dumps(data, indent=2) + "\n")
        return
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


# ---------------------------------------------------------------- Examples


def read_quarantine(examples_dir: PathLike) -> list[dict[str, Any]]:
    """Every rejected raw record: {"split", "reason", "source", "detail", ...}."""
    path = _at(examples_dir, QUARANTINE)
    if not storage.isfile(path):
        raise ArtifactFileError(f"{path} is missing; re-run the ingest stage.")
    records = []
    for number, line in enumerate(storage.read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record["split"], record["reason"]
        except (ValueError, KeyError, TypeError) as error:
            raise ArtifactFileError(f"{path}:{number}: expected a JSON object with split and "
                                    f"reason ({error!r}); re-run the ingest stage.") from None
        records.append(record)
    return records


# ---------------------------------------------------------------- Statistics


def read_statistics(statistics_dir: PathLike) -> dict[str, Any]:
    """statistics.json: {"splits": {split: {"num_examples", "features": {...}}}, ...}."""
    return read_json(_at(statistics_dir, STATISTICS))


def write_statistics(statistics_dir: PathLike, statistics: dict[str, Any]) -> None:
    write_json(_at(statistics_dir, STATISTICS), statistics)


def read_anomalies(statistics_dir: PathLike) -> list[dict[str, Any]]:
    return read_json(_at(statistics_dir, ANOMALIES))["anomalies"]


def write_anomalies(statistics_dir: PathLike, anomalies: list[dict[str, Any]]) -> None:
    write_json(_at(statistics_dir, ANOMALIES), {"anomalies": anomalies})


# ---------------------------------------------------------------- Model


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


def write_csv(path: pathlib.Path, header: Iterable[str], rows: Iterable[list]) -> None:
    """A CSV file with a header row, through a temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(header))
        writer.writerows(rows)
    os.replace(temporary, path)


# ---------------------------------------------------------------- Evaluation


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


def read_metrics(evaluation_dir: PathLike) -> dict[str, Any]:
    return read_json(pathlib.Path(evaluation_dir, METRICS))


def read_confusion(evaluation_dir: PathLike) -> dict[str, Any]:
    """{"class_names": [...], "matrix": rows = true class, columns = predicted class}; above
    100 classes {"class_names": [...], "cells": [[true, predicted, count], ...]} instead (the
    non-zero cells: the file grows with the examples, not with the classes squared)."""
    return read_json(pathlib.Path(evaluation_dir, CONFUSION))


def read_singled_out(evaluation_dir: PathLike) -> dict[str, list[dict[str, Any]]]:
    return read_json(pathlib.Path(evaluation_dir, SINGLED_OUT))


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


# ---------------------------------------------------------------- TFLiteModels


def read_variants(tflite_dir: PathLike) -> list[dict[str, Any]]:
    """variants.json: one record per variant; measured ones have name, path, size_bytes,
    accuracy, agreement, latencies (over latency_examples), ops, builtin_only, dtypes, "device"
    (checks: xnnpack, gpu, nnapi, coreml, mediapipe, benchmark) and "seconds" ({fine_tune,
    convert, measure}; both absent in older artifacts)...; skipped ones name and skipped."""
    path = pathlib.Path(tflite_dir, VARIANTS)
    records = read_json(path)
    required = {"name", "path", "size_bytes", "accuracy", "agreement", "latency_ms_p50",
                "latency_ms_p99", "ops", "builtin_only"}
    for index, record in enumerate(records):
        missing = required - set(record) if "skipped" not in record else set()
        if "name" not in record or missing:
            raise ArtifactFileError(f"{path}: entry {record.get('name', index)} lacks "
                                    f"{sorted(missing or {'name'})}; re-run the quantize stage.")
    return records


def write_variants(tflite_dir: PathLike, records: list[dict[str, Any]]) -> None:
    write_json(pathlib.Path(tflite_dir, VARIANTS), records)


def write_deployable(tflite_dir: PathLike, choice: dict[str, Any]) -> None:
    """deployable.json: {"variant", "path", "reason", "policy"} from the deploy policy."""
    write_json(pathlib.Path(tflite_dir, DEPLOYABLE), choice)


def read_deployable(tflite_dir: PathLike) -> dict[str, Any]:
    """The variant the quantize stage chose to ship, with its .tflite file as "file"."""
    path = pathlib.Path(tflite_dir, DEPLOYABLE)
    choice = read_json(path)
    file = pathlib.Path(tflite_dir, str(choice.get("path", "")))
    if not choice.get("variant") or not choice.get("path") or not file.is_file():
        raise ArtifactFileError(
            f"{path} names variant {choice.get('variant')!r} at {file}, which does not exist: "
            'expected {"variant": <name>, "path": <file in the folder>}; re-run quantize.')
    return {**choice, "file": file}


# ---------------------------------------------------------------- Report and push


def write_report_summary(report_dir: PathLike, summary: dict[str, Any]) -> None:
    write_json(pathlib.Path(report_dir, REPORT_SUMMARY), summary)


def read_report_summary(report_dir: PathLike) -> dict[str, Any]:
    return read_json(pathlib.Path(report_dir, REPORT_SUMMARY))


def write_pushed(pushed_dir: PathLike, result: dict[str, Any]) -> None:
    write_json(pathlib.Path(pushed_dir, PUSHED), result)


def read_pushed(pushed_dir: PathLike) -> dict[str, Any]:
    return read_json(pathlib.Path(pushed_dir, PUSHED))
