"""The report's section on unlabelled data: what semi-supervised training did with it, and the
labelling queue.

Pseudo-labels (from the model artifact's pseudo_labels.json/.csv): per round how many were
used of how many unlabelled records, per class, their confidence distribution, the loss over
them before and after the round; and, when `[report] unlabeled_truth` names a file of the
true labels (a benchmark keeps them; training never reads it), their accuracy per round and
per class. The labelling queue (the evaluation's labeling_queue.csv): its ranking and a
gallery of its top records (images, series or text snippets) with the predicted class,
confidence, margin and entropy. Absent both, the section is absent.
"""

from __future__ import annotations

import csv
import pathlib
from typing import Any

import numpy as np

from edgepipe.components.report import plots
from edgepipe.contracts import unlabeled_artifacts

ROUND_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def section(model_dir: pathlib.Path, evaluation_dir: pathlib.Path, unlabeled: dict | None,
            feature: str, class_names: list[str], truth_path: str | None,
            shown: int) -> dict[str, Any] | None:
    """The section's data, or None when the run had no unlabelled data."""
    pseudo = (pseudo_labels(model_dir, class_names, read_truth(truth_path, class_names))
              if unlabeled_artifacts.has_pseudo_labels(model_dir) else None)
    queue = (labeling_queue(evaluation_dir, unlabeled, feature, shown)
             if unlabeled_artifacts.has_labeling_queue(evaluation_dir) else None)
    if pseudo is None and queue is None:
        return None
    return {"pseudo": pseudo, "queue": queue}


def read_truth(path: str | None, class_names: list[str]) -> dict[str, int] | None:
    """{unlabelled record id: true label index} from a CSV with columns id and label (a class
    name or index), or None without a file."""
    if not path:
        return None
    truth = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            label = (row.get("label") or "").strip()
            if label in class_names:
                truth[row["id"]] = class_names.index(label)
            elif label.isdigit() and int(label) < len(class_names):
                truth[row["id"]] = int(label)
            else:
                raise ValueError(f"[report] unlabeled_truth {path}:{number}: label {label!r} is "
                                 f"neither a class name {class_names} nor an index; expected "
                                 "columns id,label.")
    return truth


def pseudo_labels(model_dir: pathlib.Path, class_names: list[str],
                  truth: dict[str, int] | None) -> dict[str, Any]:
    summary, rows = unlabeled_artifacts.read_pseudo_labels(model_dir)
    rounds = []
    for record in summary["rounds"]:
        mine = [row for row in rows if row["round"] == record["round"]]
        known = [row for row in mine if truth is not None and row["id"] in truth]
        per_class = []
        for index, name in enumerate(class_names):
            labelled = [row for row in known if row["label"] == index]
            per_class.append({"name": name, "count": record["per_class"].get(name, 0),
                              "accuracy": _share(labelled, truth)})
        rounds.append({**{key: value for key, value in record.items()
                          if key not in ("per_class", "confidence_histogram")},
                       "per_class": per_class, "accuracy": _share(known, truth),
                       "checked": len(known)})
    return {
        "settings": {key: value for key, value in summary.items() if key != "rounds"},
        "rounds": rounds, "truth": truth is not None,
        "per_class_figure": per_class_figure(summary["rounds"], class_names)
        if summary["rounds"] else "",
        "confidence_figure": confidence_figure(summary["rounds"]) if summary["rounds"] else "",
    }


def _share(rows: list[dict], truth: dict | None) -> float | None:
    if not rows or truth is None:
        return None
    return sum(truth[row["id"]] == row["label"] for row in rows) / len(rows)


def labeling_queue(evaluation_dir: pathlib.Path, unlabeled: dict | None, feature: str,
                   shown: int) -> dict[str, Any]:
    rows = unlabeled_artifacts.read_labeling_queue(evaluation_dir)
    top = rows[:shown]
    position = ({str(record_id): index for index, record_id in enumerate(unlabeled["id"])}
                if unlabeled is not None else {})
    values = [unlabeled[feature][position[row["id"]]] for row in top if row["id"] in position]
    figure = ""
    if values and len(values) == len(top) and feature != "text":
        titles = [f"#{row['rank']} {row['predicted']}\nconf {row['confidence']:.2f} "
                  f"margin {row['margin']:.2f}" for row in top]
        figure = (plots.image_grid(np.stack(values), titles, columns=min(6, len(top)))
                  if feature == "image" else
                  plots.series_grid(values, titles, columns=min(4, len(top))))
    items = [{**row, "snippet": _snippet(values[index]) if feature == "text" and values else ""}
             for index, row in enumerate(top)]
    return {"records": len(rows), "items": items, "figure": figure,
            "path": str(evaluation_dir / unlabeled_artifacts.LABELING_QUEUE)}


def _snippet(value: Any, limit: int = 160) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def per_class_figure(rounds: list[dict], class_names: list[str]) -> str:
    """Grouped bars: pseudo-labels used per class, one colour per round."""
    figure = plots._new_figure(10, 3.4)
    axes = figure.add_subplot()
    positions = np.arange(len(class_names))
    width = 0.8 / len(rounds)
    for index, record in enumerate(rounds):
        counts = [record["per_class"].get(name, 0) for name in class_names]
        axes.bar(positions + (index - (len(rounds) - 1) / 2) * width, counts, width,
                 label=f"round {record['round']} ({record['selected']})",
                 color=ROUND_COLORS[index % len(ROUND_COLORS)])
    axes.set_xticks(positions, class_names, rotation=30, ha="right")
    axes.set_ylabel("pseudo-labels used")
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.legend(frameon=False, ncols=len(rounds), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return plots._to_base64_png(figure)


def confidence_figure(rounds: list[dict]) -> str:
    """Per round, the histogram of the top probability over every unlabelled record (line)
    and over the pseudo-labels used (filled), with the threshold between them."""
    figure = plots._new_figure(10, 3.0)
    axes = figure.add_subplot()
    for index, record in enumerate(rounds):
        histogram = record["confidence_histogram"]
        color = ROUND_COLORS[index % len(ROUND_COLORS)]
        axes.stairs(histogram["all"], histogram["edges"], color=color, linewidth=1.4,
                    label=f"round {record['round']}: all {record['unlabeled']}")
        axes.stairs(histogram["selected"], histogram["edges"], color=color, alpha=0.3,
                    fill=True, label=f"round {record['round']}: used {record['selected']}")
    axes.set_yscale("symlog", linthresh=10)
    axes.set_xlabel("confidence (top class probability)")
    axes.set_ylabel("unlabelled records")
    axes.grid(alpha=0.3)
    axes.legend(frameon=False, fontsize=8, ncols=2, loc="upper left")
    return plots._to_base64_png(figure)


def summary(page_section: dict[str, Any] | None) -> dict[str, Any]:
    """What summary.json carries of the section."""
    if page_section is None:
        return {}
    result: dict[str, Any] = {}
    if page_section["pseudo"] is not None:
        result["pseudo_labels"] = [
            {key: value for key, value in record.items() if key != "per_class"}
            | {"per_class": {row["name"]: row["count"] for row in record["per_class"]}}
            for record in page_section["pseudo"]["rounds"]]
    if page_section["queue"] is not None:
        result["labeling_queue_top_ids"] = [row["id"] for row in page_section["queue"]["items"]]
    return {"semi_supervised": result}
