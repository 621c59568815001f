"""The report stage's generation piece: a page for a text generator.

It shows the corpus (documents and characters per split, the vocabulary, quarantine), the
training curves in bits per character, the test bits per character and perplexity with the
gates, samples written by the deployable TFLite variant (through its step signature on
LiteRT, as a device runs it) from fixed prompts at temperatures 0.5, 0.8 and 1.0, the most
surprising characters of the test text in context (where the model was least ready for what
came), and the variants with the deploy choice. summary.json carries the same numbers.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from edgepipe.components.report import plots, sections
from edgepipe.contracts import artifacts, characters
from edgepipe.contracts.litert_step import Generator

TEMPLATE = "generation.html"
TEMPERATURES = (0.5, 0.8, 1.0)


def curves(history: dict[str, list[float]]) -> str:
    figure = plots._new_figure(6, 3.4)
    axes = figure.subplots(1, 1)
    for key, name, style in (("bits_per_char", "train", "-"),
                             ("val_bits_per_char", "validation", "--")):
        values = [value for value in history.get(key) or [] if value is not None]
        if values:
            axes.plot(np.arange(1, len(values) + 1), values, style, marker="o", markersize=3,
                      label=name, color=plots._split_color(name))
    axes.set_xlabel("epoch")
    axes.set_ylabel("bits per character")
    axes.grid(alpha=0.3)
    axes.legend(frameon=False)
    return plots._to_base64_png(figure)


def samples(tflite_dir: pathlib.Path, model_dir: pathlib.Path, prompts, length: int,
            seed: int) -> list[dict[str, Any]]:
    deployable = artifacts.read_deployable(tflite_dir)
    generator = Generator(deployable["file"], model_dir / characters.FILE)
    return [{"prompt": prompt, "temperature": temperature,
             "text": generator.generate(prompt, length, temperature, seed)["text"]}
            for prompt in prompts for temperature in TEMPERATURES]


def build_page(inputs, config, context) -> dict[str, Any]:
    model_dir = pathlib.Path(inputs["model"].path)
    evaluation_dir = pathlib.Path(inputs["evaluation"].path)
    tflite_dir = pathlib.Path(inputs["tflite"].path)
    statistics = artifacts.read_statistics(inputs["statistics"].path)
    model_info = artifacts.read_model_info(model_dir)
    metrics = artifacts.read_metrics(evaluation_dir)
    blessing = artifacts.read_blessing(evaluation_dir)
    history = artifacts.read_history(model_dir)
    deployable = artifacts.read_deployable(tflite_dir)
    variants = artifacts.read_variants(tflite_dir)
    quarantine = artifacts.read_quarantine(inputs["examples"].path)
    return {
        "pipeline": context.pipeline_name, "run_id": context.run_id, "task": "generation",
        "blessed": blessing.blessed, "blessing_reason": blessing.reason,
        "stages": sections.stage_runs(context.upstream),
        "splits": {split: {key: summary[key] for key in
                           ("num_examples", "characters", "unknown_characters")}
                   for split, summary in statistics["splits"].items()},
        "vocabulary": statistics["vocabulary"],
        "quarantined": len(quarantine),
        "model": {key: model_info.get(key) for key in (
            "model", "model_options", "params", "strategy", "replicas", "epochs",
            "sequence_length", "state_shape", "global_batch_size", "training_windows")},
        "final": {key: values[-1] for key, values in history.items() if values},
        "curves_figure": curves(history),
        "metrics": {key: metrics[key] for key in ("bits_per_char", "perplexity", "characters",
                                                  "unknown_characters")},
        "splits_metrics": metrics["splits"],
        "gates": metrics["blessing"]["gates"],
        "samples": samples(tflite_dir, model_dir, config.sample_prompts, config.sample_length,
                           context.seed),
        "surprising": artifacts.read_singled_out(evaluation_dir)["surprising_characters"][
            :config.low_confidence_examples],
        "variants": variants, "deployable": deployable,
    }


def summary(page: dict[str, Any]) -> dict[str, Any]:
    return {"pipeline": page["pipeline"], "run_id": page["run_id"], "task": "generation",
            "input_feature": "text", "stages": page["stages"],
            "data": {"splits": {split: value["num_examples"] for split, value
                                in page["splits"].items()},
                     "characters": {split: value["characters"] for split, value
                                    in page["splits"].items()},
                     "quarantined": page["quarantined"]},
            "model": page["model"], "bits_per_char": page["metrics"]["bits_per_char"],
            "perplexity": page["metrics"]["perplexity"],
            "validation_bits_per_char": page["splits_metrics"]["validation"]["bits_per_char"],
            "blessed": page["blessed"], "blessing_reason": page["blessing_reason"],
            "blessing_gates": page["gates"], "samples": page["samples"],
            "variants": [record for record in page["variants"] if "skipped" not in record],
            "skipped_variants": [record for record in page["variants"] if "skipped" in record],
            "deployable_variant": {key: value for key, value in page["deployable"].items()
                                   if key != "file"}}


def run(inputs, outputs, config, context) -> dict[str, Any]:
    from edgepipe.components.report import stage

    page = build_page(inputs, config, context)
    html = stage.render(page, TEMPLATE)
    (pathlib.Path(outputs["report"]) / artifacts.REPORT_HTML).write_text(html, encoding="utf-8")
    result = summary(page)
    artifacts.write_report_summary(outputs["report"], result)
    context.log.info("report: %d KB, %s, deploy %s", len(html) // 1024,
                     "BLESSED" if page["blessed"] else "NOT BLESSED", page["deployable"]["variant"])
    return {"blessed": page["blessed"], "bits_per_char": page["metrics"]["bits_per_char"],
            "deployable_variant": page["deployable"]["variant"],
            "report_bytes": len(html.encode("utf-8"))}
