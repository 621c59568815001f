"""Stage `report`: one self-contained HTML page a person can read, plus summary.json for scripts.

The page (R/report.html) embeds every plot as a base64 PNG and its CSS inline: no network, no
JavaScript, so it opens offline, attaches to an e-mail and prints. The figures come from
report_plots (matplotlib, imported there lazily); the layout is the Jinja2 template
report_template.html shipped beside this module. summary.json carries the same numbers for
CI and scripts, including which TFLite variant to deploy.
"""

from __future__ import annotations

import collections
import csv
import importlib.resources
import json
import pathlib
from typing import Any

import pydantic

from components import examples_io, report_plots
from pipeline.stage import Artifact, Context, StageConfig

NAME = "report"
VERSION = 1
INPUTS = {
    "examples": "Examples",
    "statistics": "Statistics",
    "model": "Model",
    "evaluation": "Evaluation",
    "tflite": "TFLiteModels",
}
OUTPUTS = {"report": "Report"}
CODE = ("components.report_plots", "components.examples_io", "components.litert_measure")
TEMPLATE = "report_template.html"
CODE_FILES = (TEMPLATE,)
SPLITS = ("train", "validation", "test")


class Config(StageConfig):
    low_confidence_examples: int = pydantic.Field(
        12, ge=1, description="How many of the lowest-confidence test predictions to show."
    )
    examples_per_class: int = pydantic.Field(
        2, ge=1, description="Training images shown per class in the data section's grid."
    )
    deployable_max_drop_points: float = pydantic.Field(
        1.0, ge=0.0,
        description="The deployable variant is the smallest TFLite variant whose test accuracy "
        "is at most this many percentage points below the Keras model's (else float32).",
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
    model_info = _read_json(inputs["model"].path / "model.json")
    class_names = list(model_info["class_names"])
    evaluation = _evaluation(inputs["evaluation"].path, class_names)
    blessed, reason = _blessing(inputs["evaluation"].path)
    return {
        "pipeline": context.pipeline_name,
        "run_id": context.run_id,
        "blessed": blessed,
        "blessing_reason": reason,
        "data": _data(inputs["examples"], inputs["statistics"].path, class_names, config),
        "training": _training(inputs["model"].path, model_info),
        "evaluation": evaluation,
        "low_confidence": _low_confidence(
            inputs["evaluation"].path, inputs["examples"].path, class_names,
            config.low_confidence_examples,
        ),
        "quantization": _quantization(
            inputs["tflite"].path, evaluation["accuracy"], config.deployable_max_drop_points
        ),
    }


def render(page: dict[str, Any]) -> str:
    import jinja2

    source = importlib.resources.files("components").joinpath(TEMPLATE).read_text("utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(source).render(page=page)


def build_summary(page: dict[str, Any]) -> dict[str, Any]:
    data, evaluation, quantization = page["data"], page["evaluation"], page["quantization"]
    return {
        "pipeline": page["pipeline"],
        "run_id": page["run_id"],
        "data": {
            "splits": data["split_counts"],
            "quarantined": data["quarantined"],
            "anomalies": len(data["anomalies"]),
        },
        "model": {key: page["training"][key] for key in
                  ("name", "params", "strategy", "replicas", "epochs_run")},
        "accuracy": evaluation["accuracy"],
        "loss": evaluation["loss"],
        "num_examples": evaluation["num_examples"],
        "blessed": page["blessed"],
        "blessing_reason": page["blessing_reason"],
        "variants": quantization["variants"],
        "deployable_variant": quantization["deployable"],
    }


def _data(examples: Artifact, statistics_dir: pathlib.Path, class_names: list[str],
          config: Config) -> dict[str, Any]:
    statistics = _read_json(statistics_dir / "statistics.json")["splits"]
    anomalies = _read_json(statistics_dir / "anomalies.json")["anomalies"]
    splits = [split for split in SPLITS if split in statistics]
    distributions = {split: _feature(statistics, split, "label", statistics_dir)["distribution"]
                     for split in splits}
    histograms = {split: _feature(statistics, split, "image", statistics_dir)["histogram"]
                  for split in splits}
    train = examples_io.load_numpy(examples.path, "train")
    # The first records of each class: deterministic, and every class is shown.
    chosen = [int(index) for label in range(len(class_names))
              for index in (train["label"] == label).nonzero()[0][: config.examples_per_class]]
    return {
        **_ingest_counts(examples),
        "quarantine_reasons": _quarantine(examples.path / "quarantine" / "records.jsonl"),
        "anomalies": anomalies,
        "label_figure": report_plots.label_distribution(distributions, class_names),
        "histogram_figure": report_plots.pixel_histogram(histograms),
        "examples_figure": report_plots.image_grid(
            train["image"][chosen], [class_names[train["label"][index]] for index in chosen],
            columns=min(10, max(1, len(chosen))), cell_inches=1.0,
        ),
    }


def _ingest_counts(examples: Artifact) -> dict[str, Any]:
    """Examples per split and rejected records, from the ingest stage's manifest properties."""
    try:
        counts = examples.properties["splits"]
        quarantined = int(examples.properties["quarantined"]["total"])
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{examples.path / 'manifest.json'}: properties lack {error} (expected 'splits' "
            "{split: count} and 'quarantined' {'total': n}); re-run the ingest stage."
        ) from error
    order = [split for split in SPLITS if split in counts] + sorted(set(counts) - set(SPLITS))
    return {"split_counts": {split: int(counts[split]) for split in order},
            "quarantined": quarantined}


def _feature(statistics: dict, split: str, kind: str, statistics_dir: pathlib.Path) -> dict:
    for feature in statistics[split]["features"].values():
        if feature.get("type") == kind:
            return feature
    raise ValueError(
        f"{statistics_dir / 'statistics.json'}: split {split!r} has no feature of type {kind!r}; "
        "the report needs an image and a label feature. Re-run the statistics stage."
    )


def _quarantine(path: pathlib.Path) -> list[dict[str, Any]]:
    """The commonest (split, reason) pairs among rejected records, with one example each."""
    counter: collections.Counter = collections.Counter()
    example: dict[tuple[str, str], str] = {}
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                group = (record["split"], record["reason"])
            except (json.JSONDecodeError, KeyError) as error:
                raise ValueError(f"{path}:{number}: expected a JSON object with split and reason "
                                 f"({error}); re-run the ingest stage.") from error
            counter[group] += 1
            example.setdefault(group, f"{record.get('source', '?')}: {record.get('detail', '')}")
    return [{"split": split, "reason": reason, "count": count, "example": example[(split, reason)]}
            for (split, reason), count in counter.most_common(10)]


def _training(model_dir: pathlib.Path, model_info: dict[str, Any]) -> dict[str, Any]:
    history = _read_json(model_dir / "history.json")
    return {
        "name": model_info.get("model", "?"),
        "params": int(model_info["params"]),
        "strategy": model_info.get("strategy", "?"),
        "replicas": int(model_info.get("replicas", 1)),
        "epochs": int(model_info.get("epochs", len(history.get("loss", [])))),
        "epochs_run": len(history.get("loss", [])),
        "input_shape": model_info.get("input_shape"),
        "final": {key: values[-1] for key, values in history.items() if values},
        "curves_figure": report_plots.training_curves(history),
    }


def _evaluation(evaluation_dir: pathlib.Path, class_names: list[str]) -> dict[str, Any]:
    metrics = _read_json(evaluation_dir / "metrics.json")
    confusion = _read_json(evaluation_dir / "confusion.json")
    rows = [{"name": name, **metrics["per_class"][name]} for name in class_names]
    averages = [{"name": label, **metrics[key]}
                for key, label in (("macro_avg", "macro average"),
                                   ("weighted_avg", "weighted average"))]
    return {
        "accuracy": float(metrics["accuracy"]),
        "loss": float(metrics["loss"]),
        "num_examples": int(metrics["num_examples"]),
        "per_class": rows,
        "averages": averages,
        "confusion_figure": report_plots.confusion_matrix(
            confusion["matrix"], confusion["class_names"]
        ),
    }


def _blessing(evaluation_dir: pathlib.Path) -> tuple[bool, str]:
    found = [name for name in ("BLESSED", "NOT_BLESSED") if (evaluation_dir / name).is_file()]
    if len(found) != 1:
        raise ValueError(
            f"{evaluation_dir}: expected exactly one of BLESSED or NOT_BLESSED, found {found}. "
            "The evaluation artifact is incomplete; re-run the evaluate stage."
        )
    return found[0] == "BLESSED", (evaluation_dir / found[0]).read_text().strip()


def _low_confidence(evaluation_dir: pathlib.Path, examples_dir: pathlib.Path,
                    class_names: list[str], count: int) -> dict[str, Any]:
    """The `count` test predictions with the lowest confidence, with their images."""
    path = evaluation_dir / "predictions.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"id", "label", "prediction", "confidence"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; expected "
                         "id,label,prediction,confidence. Re-run the evaluate stage.")
    rows.sort(key=lambda row: (float(row["confidence"]), row["id"]))
    test = examples_io.load_numpy(examples_dir, "test")
    position = {str(record_id): index for index, record_id in enumerate(test["id"])}
    items, images = [], []
    for rank, row in enumerate(rows[:count], start=1):
        if row["id"] not in position:
            raise ValueError(f"{path}: prediction for id {row['id']!r} has no record in the test "
                             f"split of {examples_dir}; evaluation and examples do not match.")
        label, prediction = int(row["label"]), int(row["prediction"])
        items.append({"rank": rank, "id": row["id"], "confidence": float(row["confidence"]),
                      "label": class_names[label], "prediction": class_names[prediction],
                      "correct": label == prediction})
        images.append(test["image"][position[row["id"]]])
    titles = [f"#{item['rank']}  conf {item['confidence']:.2f}\ntrue: {item['label']}\n"
              f"pred: {item['prediction']}" for item in items]
    figure = report_plots.image_grid(images, titles, columns=min(6, max(1, len(items))),
                                     wrong=[not item["correct"] for item in items]) if items else ""
    return {"items": items, "wrong": sum(not item["correct"] for item in items),
            "figure": figure}


def _quantization(tflite_dir: pathlib.Path, keras_accuracy: float,
                  max_drop_points: float) -> dict[str, Any]:
    from components import litert_measure

    variants = _read_json(tflite_dir / "variants.json")
    required = {"name", "path", "size_bytes", "accuracy", "agreement", "latency_ms_p50",
                "latency_ms_p99", "ops"}
    for index, variant in enumerate(variants):
        if missing := required - set(variant):
            raise ValueError(f"{tflite_dir / 'variants.json'}: entry {index} lacks "
                             f"{sorted(missing)}; re-run the quantize stage.")
    by_name = {variant["name"]: variant for variant in variants}
    float32_size = by_name["float32"]["size_bytes"] if "float32" in by_name else None
    rows = []
    for variant in variants:
        delta_points = round(100.0 * (variant["accuracy"] - keras_accuracy), 6)
        rows.append({
            "name": variant["name"],
            "path": variant["path"],
            "size_bytes": int(variant["size_bytes"]),
            "size_kb": round(variant["size_bytes"] / 1024, 1),
            "size_percent_of_float32": (round(100.0 * variant["size_bytes"] / float32_size, 1)
                                        if float32_size else None),
            "accuracy": float(variant["accuracy"]),
            "delta_points": delta_points,
            "agreement": float(variant["agreement"]),
            "latency_ms_p50": float(variant["latency_ms_p50"]),
            "latency_ms_p99": float(variant["latency_ms_p99"]),
            "builtin_only": litert_measure.builtin_only(variant["ops"]),
            "ops": list(variant["ops"]),
        })
    deployable = choose_deployable(rows, keras_accuracy, max_drop_points)
    if deployable is None:
        raise ValueError(f"{tflite_dir / 'variants.json'}: no variant is within "
                         f"{max_drop_points:g} point(s) of Keras and there is no float32 variant "
                         "to fall back to; add float32 to the quantize stage's variants.")
    return {
        "variants": rows,
        "keras_accuracy": keras_accuracy,
        "max_drop_points": max_drop_points,
        "deployable": deployable,
        "figure": report_plots.variant_tradeoff(variants, keras_accuracy),
    }


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
            "reason": reason}


def _read_json(path: pathlib.Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the report reads it from the upstream "
                                "artifact. Re-run the stage that writes it.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); re-run the stage that writes it.")
