"""The report's quantization section: every measured TFLite variant against the Keras model,
the skipped ones with their reason, and the variant the quantize stage chose to deploy.

Variants are scored by the task's primary metric (accuracy, or MAE for regression). The Keras
figure they are compared with is the one the deploy policy used (quantize measured model.keras
on the same test examples as the variants, deployable.json records it): the report's "Δ vs
Keras" and the policy's choice always rest on the same number."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.components.report import plots, plots_regression
from edgepipe.contracts import artifacts, tasks


def keras_figure(declared: dict[str, Any], task) -> float:
    """The Keras model's primary metric as the deploy policy measured it."""
    policy = declared.get("policy") or {}
    value = policy.get(f"keras_{task.primary.name}")
    if value is None:
        raise artifacts.ArtifactFileError(
            f"{artifacts.DEPLOYABLE} records no keras_{task.primary.name} in its policy; it was "
            "written by an older quantize stage. Re-run quantize.")
    return float(value)


def quantization(tflite_dir: pathlib.Path, task=tasks.CLASSIFICATION) -> dict[str, Any]:
    declared = artifacts.read_deployable(tflite_dir)
    measured_names = [variant["name"] for variant in artifacts.read_variants(tflite_dir)
                      if not variant.get("skipped")]
    if declared.get("variant") not in measured_names:
        raise artifacts.ArtifactFileError(
            f"{tflite_dir / artifacts.DEPLOYABLE} names variant {declared.get('variant')!r}, "
            f"which {artifacts.VARIANTS} does not list as measured ({measured_names}); re-run "
            "the quantize stage.")
    keras_value = keras_figure(declared, task)
    if task.primary.name != "accuracy":
        return _error_quantization(tflite_dir, task, declared, keras_value)
    keras_accuracy = keras_value
    variants = artifacts.read_variants(tflite_dir)
    measured = [variant for variant in variants if not variant.get("skipped")]
    skipped = [{"name": variant["name"], "reason": str(variant["skipped"])}
               for variant in variants if variant.get("skipped")]
    by_name = {variant["name"]: variant for variant in measured}
    float32_size = by_name["float32"]["size_bytes"] if "float32" in by_name else None
    rows = [_row(variant, keras_accuracy, float32_size) for variant in measured]
    deployable = _deployable(tflite_dir, rows)
    return {
        "variants": rows,
        "skipped": skipped,
        "keras_accuracy": keras_accuracy,
        "num_examples": measured[0].get("num_examples") if measured else None,
        "latency_examples": measured[0].get("latency_examples") if measured else None,
        "metric": "accuracy",
        "max_drop_points": deployable["policy"]["max_accuracy_drop_points"],
        "deployable": deployable,
        "figure": plots.variant_tradeoff(measured, keras_accuracy) if measured else "",
    }


def _row(variant: dict[str, Any], keras_accuracy: float, float32_size: int | None) -> dict:
    return {
        "name": variant["name"],
        "path": variant["path"],
        "size_bytes": int(variant["size_bytes"]),
        "size_kb": round(variant["size_bytes"] / 1024, 1),
        "size_percent_of_float32": (round(100.0 * variant["size_bytes"] / float32_size, 1)
                                    if float32_size else None),
        "accuracy": float(variant["accuracy"]),
        "delta_points": round(100.0 * (variant["accuracy"] - keras_accuracy), 6),
        "agreement": float(variant["agreement"]),
        "latency_ms_p50": float(variant["latency_ms_p50"]),
        "latency_ms_p99": float(variant["latency_ms_p99"]),
        "builtin_only": bool(variant["builtin_only"]),
        "ops": list(variant["ops"]),
        "io": f"{variant.get('input_dtype', '?')} → {variant.get('output_dtype', '?')}",
        "seconds": _seconds(variant),
        **_device(variant.get("device") or {}),
    }


def _seconds(variant: dict[str, Any]) -> dict[str, float] | None:
    """Where the stage spent its time on the variant: {"fine_tune", "convert", "measure",
    "total"} seconds; None for variants.json written before the split was recorded."""
    seconds = variant.get("seconds")
    if not seconds:
        return None
    parts = {part: float(seconds.get(part, 0.0)) for part in ("fine_tune", "convert", "measure")}
    return {**parts, "total": round(sum(parts.values()), 2)}


def _device(device: dict[str, Any]) -> dict[str, Any]:
    """The device checks of variants.json as table cells (None: not recorded)."""
    if not device:  # variants measured before the device checks existed
        return {"gpu": None, "gpu_ok": False, "xnnpack": None, "mediapipe": None,
                "mediapipe_problems": [], "benchmark_ms": None, "benchmark_note": "not recorded"}
    gpu, xnnpack, bench = device["gpu"], device["xnnpack"], device["benchmark"]
    return {
        "gpu": "yes" if gpu["compatible"] else "no: " + ", ".join(gpu["unsupported_ops"]),
        "gpu_ok": bool(gpu["compatible"]),
        "xnnpack": (f"all {xnnpack['ops']} ops" if xnnpack["fully"] else
                    f"{xnnpack['delegated']}/{xnnpack['ops']} ops (not "
                    f"{', '.join(xnnpack['not_delegated'])})"),
        "mediapipe": "yes" if device["mediapipe"]["compatible"] else "no",
        "mediapipe_problems": list(device["mediapipe"]["problems"]),
        "benchmark_ms": bench.get("median_ms") if bench.get("ran") else None,
        "benchmark_note": "" if bench.get("ran") else str(bench.get("error", "did not run")),
    }


def _deployable(tflite_dir: pathlib.Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The variant the quantize stage's deploy policy chose (deployable.json)."""
    declared = artifacts.read_deployable(tflite_dir)
    chosen = next((row for row in rows if row["name"] == declared["variant"]), None)
    if chosen is None:
        raise artifacts.ArtifactFileError(
            f"{tflite_dir / artifacts.DEPLOYABLE} names variant {declared['variant']!r}, which "
            f"{artifacts.VARIANTS} does not list as measured ({[row['name'] for row in rows]}); "
            "re-run the quantize stage.")
    return {"name": chosen["name"], "path": chosen["path"], "size_bytes": chosen["size_bytes"],
            "accuracy": chosen["accuracy"], "delta_points": chosen["delta_points"],
            "reason": declared["reason"], "policy": declared.get("policy")}


def _error_quantization(tflite_dir: pathlib.Path, task, declared: dict[str, Any],
                        keras_value: float) -> dict[str, Any]:
    """The section for an error metric (lower is better): each variant's error, its change
    against Keras as a percentage, and its mean absolute difference from Keras's outputs."""
    metric = task.primary.name
    variants = artifacts.read_variants(tflite_dir)
    measured = [variant for variant in variants if not variant.get("skipped")]
    skipped = [{"name": variant["name"], "reason": str(variant["skipped"])}
               for variant in variants if variant.get("skipped")]
    by_name = {variant["name"]: variant for variant in measured}
    float32_size = by_name["float32"]["size_bytes"] if "float32" in by_name else None
    rows = []
    for variant in measured:
        row = _row({**variant, "accuracy": 0.0, "agreement": 0.0}, 0.0, float32_size)
        for key in ("accuracy", "agreement", "delta_points"):
            del row[key]
        row[metric] = float(variant[metric])
        row["change_percent"] = (100.0 * (variant[metric] - keras_value) / keras_value
                                 if keras_value else 0.0)
        row["mean_abs_difference"] = float(variant["mean_abs_difference"])
        rows.append(row)
    chosen = next((row for row in rows if row["name"] == declared["variant"]), None)
    if chosen is None:
        raise artifacts.ArtifactFileError(
            f"{tflite_dir / artifacts.DEPLOYABLE} names variant {declared['variant']!r}, which "
            f"{artifacts.VARIANTS} does not list as measured ({[row['name'] for row in rows]}); "
            "re-run the quantize stage.")
    policy = declared.get("policy") or {}
    return {
        "variants": rows, "skipped": skipped, "metric": metric,
        f"keras_{metric}": keras_value, "keras_value": keras_value,
        "num_examples": measured[0].get("num_examples") if measured else None,
        "latency_examples": measured[0].get("latency_examples") if measured else None,
        "max_increase_percent": 100.0 * float(policy.get("max_metric_increase", 0.0)),
        "deployable": {"name": chosen["name"], "path": chosen["path"],
                       "size_bytes": chosen["size_bytes"], metric: chosen[metric],
                       "change_percent": chosen["change_percent"],
                       "reason": declared["reason"], "policy": policy},
        "figure": plots_regression.variant_errors(
            [{**variant, metric: variant[metric]} for variant in measured], keras_value,
            metric) if measured else "",
    }
