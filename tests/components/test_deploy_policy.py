"""The deploy policy picks one variant from a measured table (pure function, synthetic table)."""

from __future__ import annotations

import pytest

from edgepipe.components.quantize import deploy_policy

KERAS = 0.90


def row(name, size, accuracy, p50, p50_all, builtin_only=True):
    return {"name": name, "path": f"{name}.tflite", "size_bytes": size, "accuracy": accuracy,
            "agreement": 0.99, "latency_ms_p50": p50, "latency_ms_p99": 2 * p50,
            "latency_ms_p50_all_cores": p50_all, "latency_ms_p99_all_cores": 2 * p50_all,
            "gzip_size_bytes": size // 2, "peak_memory_bytes": 2**20, "ops": ["CONV_2D"],
            "builtin_only": builtin_only, "input_dtype": "float32", "output_dtype": "float32"}


# Sizes, accuracies and latencies as measured on a CPU without VNNI: int8 is smallest but
# slower than float32 with XNNPACK on one thread, faster on all cores.
TABLE = [
    row("float32", 1_700_000, 0.900, 0.13, 0.09),
    row("dynamic_range", 430_000, 0.899, 0.15, 0.10),
    row("float16", 850_000, 0.900, 0.12, 0.08),
    row("int8", 432_000, 0.885, 0.20, 0.07),
    row("qat_int8", 431_000, 0.897, 0.19, 0.06),
    {"name": "int16x8", "skipped": "not asked"},
]


def choose(policy, drop, latency="one_thread", table=TABLE):
    return deploy_policy.choose(table, KERAS, policy, drop, latency)


def test_smallest_within_skips_variants_that_lose_too_much_accuracy():
    assert choose("smallest_within", 1.0)["variant"] == "dynamic_range"
    assert choose("smallest_within", 2.0)["variant"] == "dynamic_range"  # 430k < 431k < 432k
    assert choose("smallest_within", 0.05)["variant"] == "float16"  # no drop at all
    without_dynamic = [record for record in TABLE if record["name"] != "dynamic_range"]
    assert choose("smallest_within", 1.0, table=without_dynamic)["variant"] == "qat_int8"
    assert choose("smallest_within", 2.0, table=without_dynamic)["variant"] == "qat_int8"


def test_fastest_within_uses_the_measured_latency_of_the_chosen_thread_count():
    assert choose("fastest_within", 1.0)["variant"] == "float16"
    assert choose("fastest_within", 1.0, "all_cores")["variant"] == "qat_int8"
    assert choose("fastest_within", 0.05, "all_cores")["variant"] == "float16"


def test_ties_break_on_the_other_measure():
    table = [row("a", 500, 0.9, 0.2, 0.2), row("b", 400, 0.9, 0.2, 0.2),
             row("c", 400, 0.9, 0.1, 0.1)]
    assert choose("fastest_within", 0.0, table=table)["variant"] == "c"
    assert choose("smallest_within", 0.0, table=table)["variant"] == "c"


def test_variants_with_non_builtin_ops_are_never_deployed():
    table = [row("float32", 1000, 0.9, 0.1, 0.1), row("flex", 10, 0.95, 0.01, 0.01, False)]
    assert choose("smallest_within", 5.0, table=table)["variant"] == "float32"


def test_the_choice_records_policy_path_and_reason():
    chosen = choose("fastest_within", 1.0, "all_cores")
    assert chosen["path"] == "qat_int8.tflite"
    assert chosen["policy"] == {"name": "fastest_within", "metric": "accuracy",
                                "max_accuracy_drop_points": 1.0,
                                "latency": "all_cores", "keras_accuracy": KERAS,
                                "target": "any"}
    assert "0.0600 ms" in chosen["reason"] and "all cores" in chosen["reason"]
    assert "drop +0.30 points" in chosen["reason"]


def test_no_variant_within_the_limit_fails_with_the_measured_table():
    table = [row("int8", 432_000, 0.80, 0.2, 0.1), {"name": "qat_int8", "skipped": "LSTM"}]
    with pytest.raises(deploy_policy.PolicyNotSatisfied) as raised:
        choose("smallest_within", 1.0, table=table)
    message = str(raised.value)
    assert "no variant is within 1.0 accuracy points" in message
    lines = message.splitlines()
    assert any(line.split()[:5] == ["int8", "421.9", "210.9", "0.8000", "+10.00"] for line in lines)
    assert "qat_int8  skipped: LSTM" in message


def test_unknown_policy_or_latency_is_rejected():
    with pytest.raises(ValueError, match="smallest_within"):
        choose("best", 1.0)
    with pytest.raises(ValueError, match="one_thread"):
        choose("fastest_within", 1.0, "gpu")


def test_the_mediapipe_target_deploys_only_what_mediapipe_takes():
    """deploy_target = "mediapipe": the variants.json "device" check decides (int8 I/O is
    refused by MediaPipe's classifiers; uint8 and float ones are taken)."""
    def ready(record, compatible):
        return {**record, "device": {"mediapipe": {"compatible": compatible, "problems": []}}}

    table = [ready(row("float32", 1000, 0.90, 0.10, 0.10), True),
             ready(row("int8", 250, 0.90, 0.05, 0.05), False),
             ready(row("uint8", 251, 0.90, 0.05, 0.05), True)]
    assert deploy_policy.choose(table, KERAS, "smallest_within", 1.0)["variant"] == "int8"
    chosen = deploy_policy.choose(table, KERAS, "smallest_within", 1.0, target="mediapipe")
    assert chosen["variant"] == "uint8" and chosen["policy"]["target"] == "mediapipe"
    with pytest.raises(deploy_policy.PolicyNotSatisfied, match="that MediaPipe Tasks accepts"):
        deploy_policy.choose(table[1:2], KERAS, "smallest_within", 1.0, target="mediapipe")


def test_an_error_metric_takes_the_smallest_variant_within_a_fraction_of_keras():
    from edgepipe.contracts import tasks

    records = [{"name": name, "path": f"{name}.tflite", "size_bytes": size, "mae": mae,
                "mean_abs_difference": 0.0, "latency_ms_p50": 1.0, "builtin_only": True}
               for name, size, mae in (("float32", 400, 2.00), ("dynamic_range", 150, 2.03),
                                       ("int8", 100, 2.10))]
    chosen = deploy_policy.choose(records, 2.0, "smallest_within", 0.02,
                                  metric=tasks.REGRESSION.primary)
    # int8 is smallest but 5% worse: the policy takes dynamic_range (1.5%) and says why.
    assert chosen["variant"] == "dynamic_range"
    assert chosen["policy"]["keras_mae"] == 2.0 and chosen["policy"]["max_metric_increase"] == 0.02
    assert "int8 (2.1, +5.0%)" in chosen["reason"] and "within 2.0%" in chosen["reason"]
    with pytest.raises(deploy_policy.PolicyNotSatisfied, match="mae within 1.0%"):
        deploy_policy.choose(records[1:], 2.0, "smallest_within", 0.01,
                             metric=tasks.REGRESSION.primary)
