"""Stage `report`: one self-contained HTML page a person can read, plus summary.json for scripts.

The page (R/report.html) embeds every plot as a base64 PNG and its CSS inline: no network, no
JavaScript, so it opens offline, attaches to an e-mail and prints. It works for image, sequence
and text pipelines. The package: sections.py (run overview, data, training, evaluation,
galleries, quantization), tuning.py (the hyperparameter search, when the pipeline has a tune
stage), semi_supervised.py and its template semi_supervised.html (pseudo-labels and the
labelling queue, when the run had unlabelled data), network.py (inside the network: CNN filters
and activations, LSTM hidden states), plots.py and plots_network.py (matplotlib figures,
imported lazily), and the
Jinja2 layout template.html. summary.json carries the same numbers for CI and scripts,
including the variant quantize chose to deploy.
"""

from __future__ import annotations

import importlib.resources

import pathlib
from typing import Any

import pydantic

from edgepipe.components.report import network, quantization, sections, semi_supervised, tuning
from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts
from edgepipe.pipeline.stage import Artifact, Context, ExistingPath, StageConfig

NAME = "report"
VERSION = 2
INPUTS = {
    "examples": "Examples",
    "statistics": "Statistics",
    "model": "Model",
    "evaluation": "Evaluation",
    "tflite": "TFLiteModels",
}
OPTIONAL_INPUTS = {"tuning": "Tuning"}  # wired only when the pipeline has a tune stage
OUTPUTS = {"report": "Report"}
TEMPLATE = "template.html"


class Config(StageConfig):
    low_confidence_examples: int = pydantic.Field(
        12, ge=1, le=1_000, description="How many lowest-confidence and most confidently wrong test "
        "predictions each gallery shows (at most what the evaluate stage singled out).",
    )
    examples_per_class: int = pydantic.Field(
        2, ge=1, le=100, description="Training examples shown per class in the data section's grid."
    )
    network_examples: int = pydantic.Field(
        3, ge=1, le=8, description="Test examples whose LSTM hidden states are drawn (a CNN's "
        "activation maps are drawn for the first test example).",
    )
    labeling_queue_examples: int = pydantic.Field(
        12, ge=1, le=1_000, description="Records of the top of the labelling queue shown in the gallery.")
    unlabeled_truth: ExistingPath | None = pydantic.Field(
        None, description="A CSV (columns id, label: class name or index) with the true labels "
        "of unlabelled records, when known (a benchmark): the report then shows the accuracy "
        "of the pseudo-labels. Only the report reads it; training never does.")


def fingerprint(config: Config, inputs=None) -> str:
    """The content of the unlabeled_truth file: an edited file re-draws the report."""
    import hashlib

    if not config.unlabeled_truth:
        return ""
    return hashlib.sha256(pathlib.Path(config.unlabeled_truth).read_bytes()).hexdigest()


def run(inputs: dict[str, Artifact], outputs: dict[str, pathlib.Path], config: Config,
        context: Context) -> dict[str, Any]:
    page = build_page(inputs, config, context)
    html = render(page)
    output_dir = outputs["report"]
    (output_dir / "report.html").write_text(html, encoding="utf-8")
    summary = build_summary(page)
    artifacts.write_report_summary(output_dir, summary)
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
    model_info = artifacts.read_model_info(model_dir)
    class_names = list(model_info["class_names"])
    feature = examples_io.input_feature(examples)
    train = examples_io.leading_per_class(examples, "train", config.examples_per_class,
                                          len(class_names))  # all the data section shows
    test = examples_io.load_numpy(examples, "test")
    evaluation = sections.evaluation(evaluation_dir, class_names)
    blessing = artifacts.read_blessing(evaluation_dir)
    return {
        "pipeline": context.pipeline_name,
        "run_id": context.run_id,
        "feature": feature,
        "blessed": blessing.blessed,
        "blessing_reason": blessing.reason,
        "stages": sections.stage_runs(inputs, context.run_id),
        "data": sections.data(inputs["examples"], inputs["statistics"].path, feature,
                                     class_names, train, config.examples_per_class),
        "training": sections.training(model_dir, model_info),
        "evaluation": evaluation,
        "galleries": sections.galleries(evaluation_dir, test, feature,
                                               config.low_confidence_examples),
        "network": network.inside(model_dir, model_info, test, feature, class_names,
                                         config.network_examples),
        "quantization": quantization.quantization(inputs["tflite"].path, evaluation["accuracy"]),
        "semi_supervised": semi_supervised.section(
            model_dir, evaluation_dir, _unlabeled(examples), feature, class_names,
            config.unlabeled_truth, config.labeling_queue_examples),
        "tuning": tuning.section(inputs["tuning"].path) if "tuning" in inputs else None,
    }


def _unlabeled(examples) -> dict | None:
    """The unlabeled split in memory (for the labelling queue's gallery), or None."""
    if "unlabeled" not in examples_io.split_names(examples):
        return None
    return examples_io.load_numpy(examples, "unlabeled")


def render(page: dict[str, Any]) -> str:
    import jinja2

    def load(name: str) -> str:  # template.html and the section templates it includes
        return importlib.resources.files(__package__).joinpath(name).read_text("utf-8")

    source = load(TEMPLATE)
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True,
                                     loader=jinja2.FunctionLoader(load))
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
        **semi_supervised.summary(page["semi_supervised"]),
        **({"tuning": {key: page["tuning"][key] for key in
                       ("metric", "best_trial", "best_params", "best_value", "pruned")}
            | {"trials": len(page["tuning"]["trials"])}} if page["tuning"] else {}),
    }
