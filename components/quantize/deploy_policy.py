"""Choose the one TFLite variant to deploy from the measured variants.json records.

Pure functions over the records (no TensorFlow): the policy compares what was measured on the
machine the stage ran on, never an assumption such as "int8 is faster" (on a CPU without
integer dot-product instructions it often is not). Only variants that were measured and contain
builtin ops only are candidates; the accuracy drop is in percentage points below the Keras
model's accuracy on the same test examples. The metric comes from the task
(edgepipe.contracts.tasks): accuracy with its drop in points, or an error (MAE) with its
increase as a fraction of the Keras model's.

The default (the quantize stage's `deploy_policy`) is smallest_within: it ranks on size and
accuracy, which do not depend on the machine that ran the pipeline, whereas which variant is
fastest does (int8 wins on CPUs with VNNI, float32 on AVX2-only ones: docs/quantization.md).
"""

from __future__ import annotations

from typing import Any, Sequence

from edgepipe.contracts import tasks

POLICIES = ("smallest_within", "fastest_within")
# Which measured latency "fastest" means.
LATENCY_FIELDS = {"one_thread": "latency_ms_p50", "all_cores": "latency_ms_p50_all_cores"}
TOLERANCE = 1e-9
# Which variants may be deployed: any, or those MediaPipe Tasks' classifiers accept.
TARGETS = ("any", "mediapipe")
_TARGET_TEXT = {"any": "", "mediapipe": " that MediaPipe Tasks accepts"}  # accuracies are ratios of counts: compare the drop without float noise


class PolicyNotSatisfied(ValueError):
    """No measured variant meets the deploy policy; the message holds the measured table."""


def accuracy_drop_points(record: dict[str, Any], keras_accuracy: float) -> float:
    """How many percentage points the variant's accuracy is below Keras's (negative: above)."""
    return 100.0 * (keras_accuracy - record["accuracy"])


def choose(
    records: Sequence[dict[str, Any]],
    keras_accuracy: float,
    policy: str,
    max_accuracy_drop_points: float,
    latency: str = "one_thread",
    target: str = "any",
    metric: tasks.Metric = tasks.ACCURACY,
) -> dict[str, Any]:
    """{"variant", "path", "reason", "policy"} for the variant the policy picks.

    smallest_within: the smallest file among variants at most `max_accuracy_drop_points` below
    Keras (ties: the faster). fastest_within: the lowest p50 latency (one thread or all cores)
    among them (ties: the smaller). target "mediapipe" keeps only the variants MediaPipe Tasks'
    classifiers accept as they are (the "mediapipe" device check of variants.json). Raises
    PolicyNotSatisfied with the table when none qualifies. With another `metric` (an error,
    lower is better: regression's MAE), `keras_accuracy` is the Keras model's value of it and
    `max_accuracy_drop_points` the largest accepted increase as a fraction of it
    (choose_by_metric).
    """
    if metric.name != tasks.ACCURACY.name:
        return choose_by_metric(records, metric, keras_accuracy, max_accuracy_drop_points,
                                policy, latency, target)
    _check(policy, latency, target)
    description = {"name": policy, "metric": "accuracy",
                   "max_accuracy_drop_points": max_accuracy_drop_points,
                   "latency": latency, "keras_accuracy": keras_accuracy, "target": target}
    _, candidates = _qualified(records, target, lambda record: accuracy_drop_points(
        record, keras_accuracy) <= max_accuracy_drop_points + TOLERANCE)
    if not candidates:
        raise PolicyNotSatisfied(
            f"deploy policy {policy!r}: no variant{_TARGET_TEXT[target]} is within "
            f"{max_accuracy_drop_points} accuracy points of the Keras model "
            f"({keras_accuracy:.4f}) with builtin ops only. Raise [quantize] "
            "max_accuracy_drop_points, add the float32 (or uint8) variant, or improve the "
            "model. Measured:\n" + format_table(records, keras_accuracy)
        )
    chosen, why = _pick(candidates, policy, latency)
    others = sorted(record["name"] for record in candidates if record is not chosen)
    reason = (
        f"{chosen['name']}: {why} of the {len(candidates)} variant(s) within "
        f"{max_accuracy_drop_points} points of Keras accuracy {keras_accuracy:.4f} (its accuracy "
        f"{chosen['accuracy']:.4f}, drop {accuracy_drop_points(chosen, keras_accuracy):+.2f} "
        f"points); other candidates: {', '.join(others) or 'none'}"
    )
    return {"variant": chosen["name"], "path": chosen["path"], "reason": reason,
            "policy": description}


def _amount(metric: tasks.Metric, value: float, sign: str = "", digits: int = 1) -> str:
    """A worsening in the metric's unit: points below for a share (mAP), a fraction above
    for an error (MAE)."""
    if metric.worsening_unit == "points":
        return f"{value:{sign}.2f} points"
    return f"{value:{sign}.{digits}%}"


def choose_by_metric(records: Sequence[dict[str, Any]], metric: tasks.Metric,
                     keras_value: float, max_increase: float, policy: str,
                     latency: str = "one_thread", target: str = "any") -> dict[str, Any]:
    """choose() for an error metric: the candidates are the variants whose value is at most
    `max_increase` (a fraction) above Keras's; then the same smallest/fastest rule."""
    _check(policy, latency, target)
    name = metric.name
    description = {"name": policy, "metric": name, "max_metric_increase": max_increase,
                   "latency": latency, f"keras_{name}": keras_value, "target": target}
    measured, candidates = _qualified(records, target, lambda record: metric.worsening(
        record[name], keras_value) <= max_increase + TOLERANCE)
    if not candidates:
        raise PolicyNotSatisfied(
            f"deploy policy {policy!r}: no variant{_TARGET_TEXT[target]} has a {name} within "
            f"{_amount(metric, max_increase)} of the Keras model's ({keras_value:.4g}) with builtin ops "
            "only. Raise [quantize] max_metric_increase, add the float32 variant, or improve "
            "the model. Measured:\n" + format_table(records, None, metric, keras_value))
    chosen, why = _pick(candidates, policy, latency)
    others = sorted(record["name"] for record in candidates if record is not chosen)
    refused = sorted(f"{record['name']} ({record[name]:.4g}, "
                     f"{_amount(metric, metric.worsening(record[name], keras_value), '+')})"
                     for record in measured if record not in candidates)
    reason = (
        f"{chosen['name']}: {why} of the {len(candidates)} variant(s) whose {name} is within "
        f"{_amount(metric, max_increase)} of the Keras model's {keras_value:.4g} (its {name} "
        f"{chosen[name]:.4g}, {_amount(metric, metric.worsening(chosen[name], keras_value), '+', 2)}"
        "); other "
        f"candidates: {', '.join(others) or 'none'}; beyond the limit: "
        f"{', '.join(refused) or 'none'}")
    return {"variant": chosen["name"], "path": chosen["path"], "reason": reason,
            "policy": description}


def _qualified(records: Sequence[dict[str, Any]], target: str, within) -> tuple[list, list]:
    """(the measured variants the target accepts, those of them with builtin ops only that
    are `within` the policy's limit)."""
    measured = [record for record in records if not record.get("skipped")
                and (target == "any" or _mediapipe_ready(record))]
    return measured, [record for record in measured
                      if record.get("builtin_only", True) and within(record)]


def _pick(candidates: list[dict[str, Any]], policy: str, latency: str):
    """(the chosen record, why) by the policy's rule among candidates that all qualify."""
    latency_field = LATENCY_FIELDS[latency]
    if policy == "smallest_within":
        chosen = min(candidates, key=lambda record: (record["size_bytes"], record[latency_field]))
        return chosen, f"the smallest ({chosen['size_bytes']:,} bytes)"
    chosen = min(candidates, key=lambda record: (record[latency_field], record["size_bytes"]))
    threads = "1 thread" if latency == "one_thread" else "all cores"
    return chosen, (f"the fastest ({chosen[latency_field]:.4f} ms p50 batch 1, {threads}, "
                    "measured here)")


def _check(policy: str, latency: str, target: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"deploy policy {policy!r} is not one of {POLICIES}.")
    if latency not in LATENCY_FIELDS:
        raise ValueError(f"deploy latency {latency!r} is not one of {tuple(LATENCY_FIELDS)}.")
    if target not in TARGETS:
        raise ValueError(f"deploy target {target!r} is not one of {TARGETS}.")


COLUMNS = (
    ("variant", 13), ("size KB", 9), ("gzip KB", 9), ("accuracy", 8), ("drop pt", 7),
    ("agree", 6), ("p50 1t ms", 9), ("p99 1t ms", 9), ("p50 all", 8), ("p99 all", 8),
    ("mem MB", 7), ("ops", 0),
)


def _mediapipe_ready(record: dict[str, Any]) -> bool:
    return bool(record.get("device", {}).get("mediapipe", {}).get("compatible"))


def format_table(records: Sequence[dict[str, Any]], keras_accuracy: float | None,
                 metric: tasks.Metric = tasks.ACCURACY, keras_value: float | None = None) -> str:
    """A fixed-width text table of variants.json records (skipped variants with their reason);
    for an error metric its value and change against Keras replace accuracy and drop."""
    if metric.name != tasks.ACCURACY.name:
        records = [{**record, "accuracy": record.get(metric.name, 0.0),
                    "agreement": record.get("mean_abs_difference", 0.0)}
                   if not record.get("skipped") else record for record in records]
    lines = ["  ".join(name.rjust(width) if width else name for name, width in COLUMNS)]
    if metric.name != tasks.ACCURACY.name:
        lines[0] = lines[0].replace("accuracy", metric.name.rjust(8)).replace(
            "drop pt", "  +%   ").replace(" agree", "  |Δ| ")
    for record in records:
        if record.get("skipped"):
            lines.append(f"{record['name']:>13}  skipped: {record['skipped']}")
            continue
        drop = (f"{accuracy_drop_points(record, keras_accuracy):+.2f}"
                if keras_accuracy is not None else
                f"{100 * metric.worsening(record['accuracy'], keras_value):+.2f}"
                if keras_value is not None else "?")
        memory = record.get("peak_memory_bytes")
        cells = (
            record["name"], f"{record['size_bytes'] / 1024:.1f}",
            _kb(record.get("gzip_size_bytes")), f"{record['accuracy']:.4f}", drop,
            f"{record['agreement']:.4f}", _ms(record.get("latency_ms_p50")),
            _ms(record.get("latency_ms_p99")), _ms(record.get("latency_ms_p50_all_cores")),
            _ms(record.get("latency_ms_p99_all_cores")),
            f"{memory / 2**20:.1f}" if memory is not None else "?",
            _ops_note(record),
        )
        lines.append("  ".join(cell.rjust(width) if width else cell
                               for cell, (_, width) in zip(cells, COLUMNS)))
    return "\n".join(lines)


def _kb(value) -> str:
    return f"{value / 1024:.1f}" if value is not None else "?"


def _ms(value) -> str:
    return f"{value:.4f}" if value is not None else "?"


def _ops_note(record: dict[str, Any]) -> str:
    ops = record.get("ops", [])
    fused = [op for op in ops if "SEQUENCE_LSTM" in op]
    notes = [f"{record.get('input_dtype', '?')}->{record.get('output_dtype', '?')}"]
    notes += fused
    if record.get("sparsity") is not None:
        notes.append(f"sparsity {record['sparsity']:.2f}")
    if not record.get("builtin_only", True):
        notes.append("NON-BUILTIN: " + ",".join(op for op in ops if op.startswith("Flex")))
    return " ".join(notes)
