"""Stage `report`: one self-contained HTML page a person can read, plus summary.json for scripts.

The page (R/report.html) embeds every plot as a base64 PNG and its CSS inline: no network, no
JavaScript, so it opens offline, attaches to an e-mail and prints. It works for image, sequence
and text pipelines. The sections' data come from report_sections (run overview, data,
training, evaluation, galleries) and report_network (inside the network: CNN filters and
activations, LSTM hidden states); figures from report_plots (matplotlib, imported lazily);
the layout is the Jinja2 template report_template.html shipped beside this module.
summary.json carries the same numbers for CI and scripts, including the variant to deploy.
"""

from __future__ import annotations

import importlib.resources
import json
import pathlib
from typing import Any

import pydantic

from components import examples_io, report_network, report_plots, report_sections
from components.report_sections import read_json
from pipeline.stage import Artifact, Context, StageConfig

NAME = "report"
VERSION = 2
INPUTS = {
    "examples": "Examples",
    "statistics": "Statistics",
    "model": "Model",
    "evaluation": "Evaluation",
    "tflite": "TFLiteModels",
}
OUTPUTS = {"report": "Report"}
CODE = ("components.report_plots", "components.report_plots_network",
        "components.report_sections", "components.report_network", "components.examples_io",
        "components.model_inputs", "components.litert_measure", "components.text_tokens")
TEMPLATE = "report_template.html"
CODE_FILES = (TEMPLATE,)


class Config(StageConfig):
    low_confidence_examples: int = pydantic.Field(
        12, ge=1, description="How many lowest-confidence and most confidently wrong test "
        "predictions each gallery shows (at most what the evaluate stage singled out).",
    )
    examples_per_class: int = pydantic.Field(
        2, ge=1, description="Training examples shown per class in the data section's grid."
    )
    network_examples: int = pydantic.Field(
        3, ge=1, le=8, description="Test examples whose LSTM hidden states are drawn (a CNN's "
        "activation maps are drawn for the first test example).",
    )
    deployable_max_drop_points: float = pydantic.Field(
        1.0, ge=0.0,
        description="Only when the quantize stage wrote no deployable.json: the deployable "
        "variant is the smallest one at most this many percentage points below the Keras "
        "model's test accuracy (else float32).",
    )


def run(inputs: dict[str, Artifact], outputs: dict[str, pathlib.Path], config: Config,
        context: Context) -> dict[str, Any]:
    page = build_page(inputs, config, context)
    html = render(page)
    output_dir = outputs["report"]
    (output_dir / "report.html").write_text(html, encoding="utf-8")
    summary = build_summary(page)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    context.log.info("report: %d KB, %s, deploy %s", len(html) // 1024,
                     "BLESSED" if page["blessed"] else "NOT BLESSED",
                     summary["deployable_variant"]["name"])
    return {
        "blessed": page["blessed"],
        "accuracy": page["evaluation"]["accuracy"],
        "deployable_variant": summary["deployable_variant"]["name"],
        "report_bytes": len(html.encode("utf-8")),
    }


def build_page(inputs: dict[str, Artifact], config: Config, context: Context) -> dict[str, Any]:
    """Everything the template shows, as plain data (figures as base64 PNG strings)."""
    examples = inputs["examples"].path
    model_dir = pathlib.Path(inputs["model"].path)
    evaluation_dir = pathlib.Path(inputs["evaluation"].path)
    model_info = read_json(model_dir / "model.json")
    class_names = list(model_info["class_names"])
    feature = examples_io.input_feature(examples)
    train = examples_io.load_numpy(examples, "train")
    test = examples_io.load_numpy(examples, "test")
    evaluation = report_sections.evaluation(evaluation_dir, class_names)
    blessed, reason = report_sections.blessing(evaluation_dir)
    return {
        "pipeline": context.pipeline_name,
        "run_id": context.run_id,
        "feature": feature,
        "blessed": blessed,
        "blessing_reason": reason,
        "stages": report_sections.stage_runs(inputs, context.run_id),
        "data": report_sections.data(inputs["examples"], inputs["statistics"].path, feature,
                                     class_names, train, config.examples_per_class),
        "training": report_sections.training(model_dir, model_info),
        "evaluation": evaluation,
        "galleries": report_sections.galleries(evaluation_dir, test, feature,
                                               config.low_confidence_examples),
        "network": report_network.inside(model_dir, model_info, test, feature, class_names,
                                         config.network_examples),
        "quantization": _quantization(inputs["tflite"].path, evaluation["accuracy"],
                                      config.deployable_max_drop_points),
    }


def render(page: dict[str, Any]) -> str:
    import jinja2

    source = importlib.resources.files("components").joinpath(TEMPLATE).read_text("utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(source).render(page=page)


def build_summary(page: dict[str, Any]) -> dict[str, Any]:
    data, evaluation, quantization = page["data"], page["evaluation"], page["quantization"]
    galleries = page["galleries"]
    return {
        "pipeline": page["pipeline"],
        "run_id": page["run_id"],
        "input_feature": page["feature"],
        "data": {
            "splits": data["split_counts"],
            "quarantined": data["quarantined"],
            "anomalies": len(data["anomalies"]),
        },
        "stages": page["stages"],
        "model": {key: page["training"][key] for key in
                  ("name", "params", "strategy", "replicas", "epochs_run")},
        "accuracy": evaluation["accuracy"],
        "loss": evaluation["loss"],
        "top_k_accuracy": evaluation["top_k"],
        "ece": evaluation["ece"],
        "num_examples": evaluation["num_examples"],
        "confused_pairs": evaluation["confused_pairs"],
        "slices": evaluation["slices"],
        "blessed": page["blessed"],
        "blessing_reason": page["blessing_reason"],
        "blessing_gates": evaluation["gates"],
        "lowest_confidence_ids": [item["id"] for item in galleries["lowest_confidence"]["items"]],
        "most_confidently_wrong_ids": [
            item["id"] for item in galleries["most_confidently_wrong"]["items"]],
        "network": page["network"]["kind"],
        "variants": quantization["variants"],
        "skipped_variants": quantization["skipped"],
        "deployable_variant": quantization["deployable"],
    }


def _quantization(tflite_dir: pathlib.Path, keras_accuracy: float,
                  max_drop_points: float) -> dict[str, Any]:
    from components import litert_measure

    variants = read_json(tflite_dir / "variants.json")
    required = {"name", "path", "size_bytes", "accuracy", "agreement", "latency_ms_p50",
                "latency_ms_p99", "ops"}
    measured = [variant for variant in variants if not variant.get("skipped")]
    skipped = [{"name": variant.get("name", "?"), "reason": str(variant["skipped"])}
               for variant in variants if variant.get("skipped")]
    for index, variant in enumerate(measured):
        if missing := required - set(variant):
            raise ValueError(f"{tflite_dir / 'variants.json'}: entry {variant.get('name', index)} "
                             f"lacks {sorted(missing)}; re-run the quantize stage.")
    by_name = {variant["name"]: variant for variant in measured}
    float32_size = by_name["float32"]["size_bytes"] if "float32" in by_name else None
    rows = []
    for variant in measured:
        rows.append({
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
            "builtin_only": litert_measure.builtin_only(variant["ops"]),
            "ops": list(variant["ops"]),
        })
    deployable = _declared_deployable(tflite_dir, rows)
    if deployable is None:
        deployable = choose_deployable(rows, keras_accuracy, max_drop_points)
    if deployable is None:
        raise ValueError(f"{tflite_dir / 'variants.json'}: no variant is within "
                         f"{max_drop_points:g} point(s) of Keras and there is no float32 variant "
                         "to fall back to; add float32 to the quantize stage's variants.")
    return {
        "variants": rows,
        "skipped": skipped,
        "keras_accuracy": keras_accuracy,
        "max_drop_points": max_drop_points,
        "deployable": deployable,
        "figure": report_plots.variant_tradeoff(measured, keras_accuracy) if measured else "",
    }


def _declared_deployable(tflite_dir: pathlib.Path, rows: list[dict]) -> dict[str, Any] | None:
    """The variant the quantize stage's deploy policy chose (Q/deployable.json), if it wrote one."""
    path = tflite_dir / "deployable.json"
    if not path.is_file():
        return None
    declared = read_json(path)
    name = declared.get("name") or declared.get("variant")
    chosen = next((row for row in rows if row["name"] == name), None)
    if chosen is None:
        raise ValueError(f"{path} names variant {name!r}, which variants.json does not list as "
                         f"measured ({[row['name'] for row in rows]}); re-run the quantize stage.")
    policy = declared.get("policy")
    reason = declared.get("reason") or (f"chosen by the deploy policy {policy}" if policy
                                        else "chosen by the quantize stage")
    return {"name": chosen["name"], "path": chosen["path"], "size_bytes": chosen["size_bytes"],
            "accuracy": chosen["accuracy"], "delta_points": chosen["delta_points"],
            "reason": reason, "source": "deployable.json",
            "policy": policy if isinstance(policy, (str, dict)) else None}


def choose_deployable(rows: list[dict[str, Any]], keras_accuracy: float,
                      max_drop_points: float) -> dict[str, Any] | None:
    """The smallest variant at most `max_drop_points` below Keras, else float32 (else None)."""
    close = [row for row in rows if row["delta_points"] >= -max_drop_points]
    if close:
        chosen = min(close, key=lambda row: row["size_bytes"])
        reason = (f"smallest variant within {max_drop_points:g} point(s) of the Keras "
                  f"model's accuracy ({100 * keras_accuracy:.1f}%)")
    else:
        chosen = next((row for row in rows if row["name"] == "float32"), None)
        if chosen is None:
            return None
        reason = f"no quantized variant is within {max_drop_points:g} point(s) of Keras"
    return {"name": chosen["name"], "path": chosen["path"], "size_bytes": chosen["size_bytes"],
            "accuracy": chosen["accuracy"], "delta_points": chosen["delta_points"],
            "reason": reason, "source": "report rule (no deployable.json)", "policy": None}
