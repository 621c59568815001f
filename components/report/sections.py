"""The report's sections as plain data: run overview, data, training, evaluation, gallery.

Each function reads upstream artifacts and returns a dict for the template (figures as base64
PNG strings from plots). They work for every input kind of the Examples contract:
images, variable-length sequences and text.
"""

from __future__ import annotations

import collections
import pathlib
from typing import Any

import numpy as np

from edgepipe.components.report import plots as plots
from edgepipe.contracts import artifacts
from edgepipe.pipeline.stage import Artifact, UpstreamStage

SPLITS = ("train", "validation", "test")
# Classes a figure draws at most (confusion matrix, label distribution, example grid): its
# memory and the page grow with what it draws (10,000 classes passed 10 GB before).
PLOTTED_CLASSES = 30
TABLED_CLASSES = 50  # rows of the report's per-class table


def stage_runs(upstream: dict[str, UpstreamStage]) -> list[dict[str, Any]]:
    """Time and origin of each upstream stage, from what the runner put in the context (in
    DAG order): a stage whose result another run computed was reused from the cache."""
    return [{"stage": run.stage, "key": run.key, "seconds": run.seconds, "run_id": run.run_id,
             "created": run.created, "cached": run.cached, "resumed": run.resumed}
            for run in upstream.values()]


def data(examples: Artifact, statistics_dir: pathlib.Path, feature: str, class_names: list[str],
         train: dict, per_class: int) -> dict[str, Any]:
    statistics = artifacts.read_statistics(statistics_dir)["splits"]
    anomalies = artifacts.read_anomalies(statistics_dir)
    splits = [split for split in SPLITS if split in statistics]
    # The unlabeled split has no label distribution, but its values (drift) are drawn too.
    value_splits = splits + [split for split in ("unlabeled",) if split in statistics]
    distributions = {split: _feature(statistics, split, "label", statistics_dir)["distribution"]
                     for split in splits}
    # The first records of each class: deterministic, and every class is shown (the first
    # PLOTTED_CLASSES of many: a figure's memory grows with what it draws).
    chosen = [int(index) for label in range(min(len(class_names), PLOTTED_CLASSES))
              for index in (train["label"] == label).nonzero()[0][:per_class]]
    names = [class_names[train["label"][index]] for index in chosen]
    figures = {"label_figure": plots.label_distribution(distributions,
                                                        class_names[:PLOTTED_CLASSES])}
    if feature == "image":
        figures["histogram_figure"] = plots.pixel_histogram(
            {split: _feature(statistics, split, "image", statistics_dir)["histogram"]
             for split in value_splits})
        figures["examples_figure"] = plots.image_grid(
            train["image"][chosen], names, columns=min(10, max(1, len(chosen))),
            cell_inches=1.0)
    elif feature == "sequence":
        figures["lengths_figure"] = plots.length_histogram(
            {split: _feature(statistics, split, "sequence", statistics_dir)["length"]["histogram"]
             for split in value_splits})
        figures["examples_figure"] = plots.series_grid(
            [train["sequence"][index] for index in chosen], names,
            columns=min(6, max(1, len(chosen))))
    elif feature == "text":
        figures["lengths_figure"] = plots.length_histogram(
            {split: _feature(statistics, split, "text", statistics_dir)
             .get("tokens", {}).get("histogram", {"edges": [], "counts": []})
             for split in value_splits}, "text length (tokens)")
        figures["example_texts"] = [{"label": name, "id": str(train["id"][index]),
                                     "snippet": _snippet(train["text"][index])}
                                    for name, index in zip(names, chosen)]
        figures["vocabulary"] = _vocabulary(statistics_dir)
    elif feature == "audio":
        from edgepipe.components.report import audio

        audio_statistics = _feature(statistics, "train", "audio", statistics_dir)
        figures.update(audio.data_section(train, chosen, names, audio_statistics["sample_rate"],
                                          audio_statistics))
    return {
        **_ingest_counts(examples),
        "feature": feature,
        "quarantine_reasons": _quarantine(artifacts.read_quarantine(examples.path)),
        "anomalies": anomalies,
        **figures,
    }


def _vocabulary(statistics_dir: pathlib.Path, shown: int = 30) -> dict[str, Any] | None:
    """Size and most frequent tokens of the text vocabulary the statistics stage wrote."""
    from edgepipe.contracts import text_tokens

    path = statistics_dir / text_tokens.VOCABULARY_FILE
    if not path.is_file():
        return None
    tokens = text_tokens.read_vocabulary(path)
    return {"size": len(tokens), "top": tokens[len(text_tokens.RESERVED):][:shown]}


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
        f"{statistics_dir / artifacts.STATISTICS}: split {split!r} has no feature of type {kind!r}; "
        "the report needs the input feature and a label feature. Re-run the statistics stage."
    )


def _quarantine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The commonest (split, reason) pairs among rejected records, with one example each."""
    counter: collections.Counter = collections.Counter()
    example: dict[tuple[str, str], str] = {}
    for record in records:
        group = (record["split"], record["reason"])
        counter[group] += 1
        example.setdefault(group, f"{record.get('source', '?')}: {record.get('detail', '')}")
    return [{"split": split, "reason": reason, "count": count, "example": example[(split, reason)]}
            for (split, reason), count in counter.most_common(10)]


def training(model_dir: pathlib.Path, model_info: dict[str, Any]) -> dict[str, Any]:
    history = artifacts.read_history(model_dir)
    return {
        "name": model_info.get("model", "?"),
        "params": int(model_info["params"]),
        "strategy": model_info.get("strategy", "?"),
        "replicas": int(model_info.get("replicas", 1)),
        "epochs": int(model_info.get("epochs", len(history.get("loss", [])))),
        "epochs_run": len(history.get("loss", [])),
        "input_shape": model_info.get("input_shape"),
        "padding": model_info.get("padding"),
        "precision": model_info.get("precision_choice"),  # what and why (train/precision.py)
        "budget": model_info.get("budget"),  # [train] max_minutes (train/budget.py)
        "logs": str(model_dir / artifacts.LOGS) if (model_dir / artifacts.LOGS).is_dir() else "",
        "final": {key: values[-1] for key, values in history.items() if values},
        "curves_figure": plots.training_curves(history),
    }


def evaluation(evaluation_dir: pathlib.Path, class_names: list[str]) -> dict[str, Any]:
    metrics = artifacts.read_metrics(evaluation_dir)
    confusion = artifacts.read_confusion(evaluation_dir)
    for key in ("calibration", "top_k_accuracy", "confused_pairs", "slices", "blessing"):
        if key not in metrics:
            raise ValueError(f"{evaluation_dir / artifacts.METRICS} lacks {key!r}: it was written "
                             "by an older evaluate stage. Re-run evaluate.")
    rows = [{"name": name, **metrics["per_class"][name]} for name in class_names]
    # Past TABLED_CLASSES the table keeps the classes with the lowest F1 (the ones to look at);
    # metrics.json has them all.
    worst = sorted(range(len(rows)), key=lambda index: rows[index]["f1"])[:TABLED_CLASSES]
    tabled = [rows[index] for index in sorted(worst)]  # in class order
    averages = [{"name": label, **metrics[key]}
                for key, label in (("macro_avg", "macro average"),
                                   ("weighted_avg", "weighted average"))]
    calibration = metrics["calibration"]
    return {
        "accuracy": float(metrics["accuracy"]),
        "loss": float(metrics["loss"]),
        "num_examples": int(metrics["num_examples"]),
        "top_k": metrics["top_k_accuracy"],
        "ece": float(calibration["ece"]),
        "mean_confidence": float(calibration["mean_confidence"]),
        "per_class": tabled,
        "classes_not_tabled": len(rows) - len(tabled),
        "averages": averages,
        "confused_pairs": metrics["confused_pairs"],
        "slices": metrics["slices"],
        "gates": metrics["blessing"]["gates"],
        "confusion_figure": plots.confusion_matrix(*_plotted_confusion(confusion)),
        "reliability_figure": plots.reliability_diagram(calibration["bins"],
                                                                calibration["ece"]),
    }


def _plotted_confusion(confusion: dict) -> tuple[list[list[int]], list[str]]:
    """(matrix, class names) to draw: every class of a few, else the PLOTTED_CLASSES classes
    most involved in confusions (as true or predicted class), in class order."""
    names = confusion["class_names"]
    cells = ([(true, predicted, value) for true, row in enumerate(confusion["matrix"])
              for predicted, value in enumerate(row) if value]
             if "matrix" in confusion else [tuple(cell) for cell in confusion["cells"]])
    if len(names) <= PLOTTED_CLASSES:
        kept = list(range(len(names)))
    else:
        involved = collections.Counter()
        for true, predicted, value in cells:
            if true != predicted:
                involved[true] += value
                involved[predicted] += value
        kept = sorted(index for index, _ in involved.most_common(PLOTTED_CLASSES))
    position = {index: place for place, index in enumerate(kept)}
    matrix = [[0] * len(kept) for _ in kept]
    for true, predicted, value in cells:
        if true in position and predicted in position:
            matrix[position[true]][position[predicted]] = value
    return matrix, [names[index] for index in kept]


def galleries(evaluation_dir: pathlib.Path, test: dict, feature: str,
              count: int, sample_rate: int = 0) -> dict[str, dict[str, Any]]:
    """The lowest-confidence and the most confidently wrong test examples, drawn by kind."""
    path = evaluation_dir / artifacts.SINGLED_OUT
    singled_out = artifacts.read_singled_out(evaluation_dir)
    position = {str(record_id): index for index, record_id in enumerate(test["id"])}
    result = {}
    for key in ("lowest_confidence", "most_confidently_wrong"):
        items = []
        for rank, row in enumerate(singled_out.get(key, [])[:count], start=1):
            if row["id"] not in position:
                raise ValueError(f"{path}: id {row['id']!r} has no record in the test split; "
                                 "the evaluation and the examples do not match.")
            value = test[feature][position[row["id"]]]
            items.append({
                "rank": rank, "id": row["id"], "confidence": float(row["confidence"]),
                "entropy": float(row["entropy"]), "label": row["label_name"],
                "prediction": row["prediction_name"],
                "correct": row["label"] == row["prediction"], "value": value,
                "snippet": _snippet(value) if feature == "text" else "",
            })
        result[key] = {"items": items, "wrong": sum(not item["correct"] for item in items),
                       "figure": _gallery_figure(items, feature, sample_rate)}
        for item in items:
            del item["value"]
    return result


def _gallery_figure(items: list[dict[str, Any]], feature: str,
                    sample_rate: int = 0) -> str:
    if not items or feature == "text":
        return ""  # text examples are shown as snippets in the table
    titles = [f"#{item['rank']}  conf {item['confidence']:.2f}\ntrue: {item['label']}\n"
              f"pred: {item['prediction']}" for item in items]
    wrong = [not item["correct"] for item in items]
    values = [item["value"] for item in items]
    if feature == "image":
        return plots.image_grid(np.stack(values), titles,
                                       columns=min(6, max(1, len(items))), wrong=wrong)
    if feature == "audio":
        from edgepipe.components.report import audio

        return audio.spectrogram_grid(values, titles, sample_rate, wrong)
    return plots.series_grid(values, titles, columns=min(4, max(1, len(items))),
                                    wrong=wrong)


def _snippet(value: Any, limit: int = 160) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
