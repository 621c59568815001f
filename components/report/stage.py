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

from edgepipe.components.report import (centroids, classification, detection, forecasting,
                                        generation, network, quantization, regression, sections,
                                        tuning)
from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, tasks
from edgepipe.pipeline.stage import Artifact, Context, ExistingPath, StageConfig
from edgepipe.pipeline.spec import StageSpec

TEMPLATE = "template.html"
# What differs per task (edgepipe.contracts.tasks): sections, headline cards, summary fields.
# generation builds its own page: its piece has its own `run`.
PIECES = {"classification": classification, "regression": regression, "detection": detection,
          "centroids": centroids, "forecasting": forecasting, "generation": generation}


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
    sample_prompts: tuple[str, ...] = pydantic.Field(
        ("The ", "A man ", "Love is "), description="Generation: the fixed prompts the report "
        "continues at temperatures 0.5, 0.8 and 1.0 (the deployable variant on LiteRT).")
    sample_length: int = pydantic.Field(
        160, ge=1, le=2000, description="Generation: characters written per sample.")
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
    piece = PIECES[tasks.of_model(artifacts.read_model_info(inputs["model"].path)).name]
    if hasattr(piece, "run"):  # a task whose page is its own
        return piece.run(inputs, outputs, config, context)
    page = build_page(inputs, config, context)
    html = render(page)
    output_dir = outputs["report"]
    (output_dir / artifacts.REPORT_HTML).write_text(html, encoding="utf-8")
    summary = build_summary(page)
    artifacts.write_report_summary(output_dir, summary)
    context.log.info("report: %d KB, %s, deploy %s", len(html) // 1024,
                     "BLESSED" if page["blessed"] else "NOT BLESSED",
                     summary["deployable_variant"]["name"])
    primary = tasks.of_name(page["task"]).primary.name
    return {
        "blessed": page["blessed"],
        primary: page["evaluation"][primary],
        "deployable_variant": summary["deployable_variant"]["name"],
        "report_bytes": len(html.encode("utf-8")),
    }


def build_page(inputs: dict[str, Artifact], config: Config, context: Context) -> dict[str, Any]:
    """Everything the template shows, as plain data (figures as base64 PNG strings). The
    task's piece (classification.py, regression.py) supplies the data, evaluation and
    gallery sections and the headline cards; the rest is the same for every task."""
    examples = inputs["examples"].path
    model_dir = pathlib.Path(inputs["model"].path)
    evaluation_dir = pathlib.Path(inputs["evaluation"].path)
    model_info = artifacts.read_model_info(model_dir)
    task = tasks.of_model(model_info)
    piece = PIECES[task.name]
    names = list(model_info.get("class_names") or model_info.get("target_names") or [])
    feature = examples_io.input_feature(examples)
    test = examples_io.load_numpy(examples, "test")
    blessing = artifacts.read_blessing(evaluation_dir)
    return {
        "pipeline": context.pipeline_name,
        "run_id": context.run_id,
        "task": task.name,
        "task_template": piece.TEMPLATE,
        "feature": feature,
        "blessed": blessing.blessed,
        "blessing_reason": blessing.reason,
        "stages": sections.stage_runs(context.upstream),
        "training": sections.training(model_dir, model_info),
        **piece.sections_of(inputs, model_dir, evaluation_dir, model_info, feature, config,
                            test),
        "network": network.inside(model_dir, model_info, test, feature, names,
                                  config.network_examples),
        "quantization": quantization.quantization(inputs["tflite"].path, task),
        "tuning": tuning.section(inputs["tuning"].path) if "tuning" in inputs else None,
    }


def render(page: dict[str, Any], template: str = TEMPLATE) -> str:
    import jinja2

    def load(name: str) -> str:  # template.html and the section templates it includes
        return importlib.resources.files(__package__).joinpath(name).read_text("utf-8")

    source = load(template)
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True,
                                     loader=jinja2.FunctionLoader(load))
    return environment.from_string(source).render(page=page)


def build_summary(page: dict[str, Any]) -> dict[str, Any]:
    data, evaluation, quantization = page["data"], page["evaluation"], page["quantization"]
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
        "task": page["task"],
        **PIECES[page["task"]].summary(page),
        "blessed": page["blessed"],
        "blessing_reason": page["blessing_reason"],
        "blessing_gates": evaluation["gates"],
        "network": page["network"]["kind"],
        "variants": quantization["variants"],
        "skipped_variants": quantization["skipped"],
        "deployable_variant": quantization["deployable"],
        **({"tuning": {key: page["tuning"][key] for key in
                       ("metric", "best_trial", "best_params", "best_value", "pruned")}
            | {"trials": len(page["tuning"]["trials"])}} if page["tuning"] else {}),
    }


SPEC = StageSpec(
    name="report", version=2, config=Config, run=run, fingerprint=fingerprint,
    inputs={"examples": "Examples", "statistics": "Statistics", "model": "Model",
            "evaluation": "Evaluation", "tflite": "TFLiteModels"},
    optional_inputs={"tuning": "Tuning"},  # wired only when the pipeline has a tune stage
    outputs={"report": "Report"},
)
