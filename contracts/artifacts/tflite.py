"""The TFLiteModels artifact (quantize): one <variant>.tflite per variant (standard TFLite
metadata and packed labels inside) with its <variant>.json sidecar, variants.json (each
variant measured on LiteRT) and deployable.json (the variant to ship, by the deploy policy)."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.contracts.artifacts.files import (WRITERS, ArtifactFileError, PathLike, read_json,
                                                write_json)

VARIANTS = "variants.json"
DEPLOYABLE = "deployable.json"
WRITERS.update(dict.fromkeys((VARIANTS, DEPLOYABLE), "quantize"))


def variant_file(variant: str) -> str:
    """The file of a variant in the folder: <variant>.tflite (its sidecar: <variant>.json)."""
    return f"{variant}.tflite"


def read_variants(tflite_dir: PathLike) -> list[dict[str, Any]]:
    """variants.json: one record per variant; measured ones have name, path, size_bytes,
    the task's scores (accuracy and agreement; mae and mean_abs_difference; map_50 and
    agreement), latencies (over latency_examples), ops, builtin_only, dtypes, "device"
    (checks: xnnpack, gpu, nnapi, coreml, mediapipe, benchmark) and "seconds" ({fine_tune,
    convert, measure}; both absent in older artifacts)...; skipped ones name and skipped."""
    path = pathlib.Path(tflite_dir, VARIANTS)
    records = read_json(path)
    required = {"name", "path", "size_bytes", "latency_ms_p50", "latency_ms_p99", "ops",
                "builtin_only"}
    scores = ({"accuracy", "agreement"}, {"mae", "mean_abs_difference"},
              {"map_50", "agreement"},  # classification, regression, detection
              {"centroid_f1", "agreement"},  # detection by centroids
              {"bits_per_char", "bits_per_char_difference"})  # generation
    for index, record in enumerate(records):
        missing = required - set(record) if "skipped" not in record else set()
        if "skipped" not in record and not any(score <= set(record) for score in scores):
            missing |= scores[0] - set(record)
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
