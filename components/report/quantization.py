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
    variants = artifacts.read_variants(tflite_dir)
    measured = [variant for variant in variants if not variant.get("skipped")]
    names = [variant["name"] for variant in measured]
    if declared.get("variant") not in names:
        raise artifacts.ArtifactFileError(
            f"{tflite_dir / artifacts.DEPLOYABLE} names variant {declared.get('variant')!r}, "
            f"which {artifacts.VARIANTS} does not list as measured ({names}); re-run the "
            "quantize stage.")
    keras_value = keras_figure(declared, task)
    float32 = next((variant for variant in measured if variant["name"] == "float32"), None)
    float32_size = float32["size_bytes"] if float32 else None
    rows = [_row(variant, float32_size) for variant in measured]
    section = (_accuracy_section if task.primary.higher_is_better else _error_section)(
        rows, measured, task.primary.name, keras_value, declared)
    chosen = next(row for row in section["variants"] if row["name"] == declared["variant"])
    shown = section.pop("deployable_keys")  # the section's own fields of the chosen variant
    return {
        **section,
        "skipped": [{"name": variant["name"], "reason": str(variant["skipped"])}
                    for variant in variants if variant.get("skipped")],
        "num_examples": measured[0].get("num_examples"),
        "latency_examples": measured[0].get("latency_examples"),
        "deployable": {**{key: chosen[key] for key in (
            "name", "path", "size_bytes", *shown)},
            "reason": declared["reason"], "policy": declared.get("policy")},
    }


def _accuracy_section(rows, measured, metric: str, keras_accuracy: float, declared) -> dict:
    """Accuracy (higher is better): each variant's accuracy, its difference from Keras's in
    points, and its agreement with Keras's classes."""
    # Another share of 0..1 (a detector's mAP@.5) is shown in the accuracy's columns.
    measured = [{**variant, "accuracy": variant[metric]} for variant in measured]
    for row, variant in zip(rows, measured):
        row.update({metric: float(variant["accuracy"]), "accuracy": float(variant["accuracy"]),
                    "agreement": float(variant["agreement"]),
                    "delta_points": round(100.0 * (variant["accuracy"] - keras_accuracy), 6)})
    return {"variants": rows, "metric": metric, "share": True, "keras_accuracy": keras_accuracy,
            "max_drop_points": (declared.get("policy") or {}).get(
                "max_accuracy_drop_points", (declared.get("policy") or {}).get(
                    "max_metric_increase")),  # a share other than accuracy: in points too
            "deployable_keys": tuple(dict.fromkeys((metric, "accuracy", "delta_points"))),
            "figure": plots.variant_tradeoff(measured, keras_accuracy)}


def _error_section(rows, measured, metric: str, keras_value: float, declared) -> dict:
    """An error metric (lower is better, regression's MAE): each variant's error, its change
    against Keras's in percent, and the mean distance of its values from Keras's."""
    for row, variant in zip(rows, measured):
        row.update({metric: float(variant[metric]),
                    "change_percent": (100.0 * (variant[metric] - keras_value) / keras_value
                                       if keras_value else 0.0),
                    "mean_abs_difference": float(variant["mean_abs_difference"])})
    policy = declared.get("policy") or {}
    return {"variants": rows, "metric": metric, "share": False, f"keras_{metric}": keras_value,
            "keras_value": keras_value,
            "max_increase_percent": 100.0 * float(policy.get("max_metric_increase", 0.0)),
            "deployable_keys": (metric, "change_percent"),
            "figure": plots_regression.variant_errors(measured, keras_value, metric)}


def _row(variant: dict[str, Any], float32_size: int | None) -> dict:
    """What every task's table shows of a variant: size, latency, ops, device checks."""
    return {
        "name": variant["name"],
        "path": variant["path"],
        "size_bytes": int(variant["size_bytes"]),
        "size_kb": round(variant["size_bytes"] / 1024, 1),
        "size_percent_of_float32": (round(100.0 * variant["size_bytes"] / float32_size, 1)
                                    if float32_size else None),
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
