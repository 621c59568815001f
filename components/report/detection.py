"""The report's detection piece: boxes per class in each split, mAP@.5 and mAP@[.5:.95], AP per
class and the precision-recall curves (IoU 0.5), test images with their true (green) and
predicted (red) boxes, the images with the most missed boxes and the most confident false
boxes (evaluate's singled_out.json)."""

from __future__ import annotations

import csv
import pathlib
from typing import Any

import numpy as np

from edgepipe.components.report import plots, sections
from edgepipe.contracts import artifacts

TEMPLATE = "detection.html"
SHOWN_IMAGES = 12


def sections_of(inputs, model_dir, evaluation_dir: pathlib.Path, model_info: dict, feature: str,
                config, test: dict) -> dict[str, Any]:
    names = list(model_info["class_names"])
    metrics = artifacts.read_metrics(evaluation_dir)
    predicted = _predictions(evaluation_dir, names)
    position, singled, count, shown, misses, false_ids = picks(
        evaluation_dir, config, test, "confident_false_boxes")
    evaluation = {
        "map_50": float(metrics["map_50"]), "map_50_95": float(metrics["map_50_95"]),
        "num_examples": int(metrics["num_examples"]), "num_boxes": int(metrics["num_boxes"]),
        "per_class": [{"name": name, **metrics["per_class"][name]} for name in names],
        "gates": metrics["blessing"]["gates"],
        "pr_figure": _pr_curves(metrics["pr_curves"]),
    }
    draw = lambda ids: _boxes_figure(ids, position, test, predicted, names)
    return {
        "data": _data(inputs["examples"], inputs["statistics"].path, feature, names),
        "evaluation": evaluation,
        "galleries": {"test_images": draw(shown), "worst_misses": draw(misses),
                      "false_boxes": draw(false_ids),
                      "misses_table": singled.get("worst_misses", [])[:count],
                      "false_table": singled.get("confident_false_boxes", [])[:count]},
        "semi_supervised": None,
        "cards": [
            {"label": "Test mAP@.5", "value": f"{evaluation['map_50']:.3f}",
             "note": f"{evaluation['num_examples']} test images, {evaluation['num_boxes']} boxes "
                     "(COCO, pycocotools)"},
            {"label": "mAP@[.5:.95]", "value": f"{evaluation['map_50_95']:.3f}",
             "note": "averaged over IoU 0.5, 0.55, ..., 0.95"},
        ],
    }


def picks(evaluation_dir, config, test: dict, false_key: str):
    """What the galleries show: (each test id's index, singled_out.json, how many images per
    gallery, the first test ids, the ids of the worst misses, of the most confident false
    predictions (singled_out's `false_key`))."""
    position = {str(record_id): index for index, record_id in enumerate(test["id"])}
    singled = artifacts.read_singled_out(evaluation_dir)
    count = min(config.low_confidence_examples, SHOWN_IMAGES)
    shown = [str(record_id) for record_id in test["id"][:count]]
    misses = [row["id"] for row in singled.get("worst_misses", [])[:count]]
    false_ids = list(dict.fromkeys(row["id"] for row in singled.get(false_key, [])[:count]))
    return position, singled, count, shown, misses, false_ids


def _data(examples, statistics_dir, feature: str, names: list[str]) -> dict:
    statistics = artifacts.read_statistics(statistics_dir)["splits"]
    boxes = {split: statistics[split]["features"]["objects"]
             for split in sections.SPLITS
             if split in statistics and "objects" in statistics[split]["features"]}
    return {
        **sections._ingest_counts(examples),
        "feature": feature,
        "quarantine_reasons": sections._quarantine(artifacts.read_quarantine(examples.path)),
        "anomalies": artifacts.read_anomalies(statistics_dir),
        "label_figure": plots.label_distribution(
            {split: stats["distribution"] for split, stats in boxes.items()}, names),
        "label_caption": "Boxes per class within each split (an image may hold several).",
        "box_statistics": [{"split": split, "boxes": stats["num_boxes"],
                            "per_image": stats["boxes_per_image"]["mean"],
                            "background": stats["boxes_per_image"]["background_images"],
                            "per_class": stats["per_class"]}
                           for split, stats in boxes.items()],
        "class_names": names,
    }


def _predictions(evaluation_dir: pathlib.Path, names: list[str]) -> dict[str, list]:
    """{record id: [(class index, score, box), ...]} of predictions.csv."""
    found: dict[str, list] = {}
    with open(evaluation_dir / artifacts.PREDICTIONS, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            box = [float(row[key]) for key in ("ymin", "xmin", "ymax", "xmax")]
            found.setdefault(row["id"], []).append((names.index(row["class"]),
                                                    float(row["score"]), box))
    return found


def _boxes_figure(ids: list[str], position: dict, test: dict, predicted: dict,
                  names: list[str], min_score: float = 0.5) -> str:
    """Test images with their true boxes (green) and predicted boxes scoring >= min_score
    (red, with class and score)."""
    import matplotlib.patches as patches

    def draw(axis, record_id: str, index: int, height: int, width: int) -> None:
        truth = test["objects"][index]
        for box, label in zip(truth["bbox"], truth["label"]):
            axis.add_patch(patches.Rectangle((box[1] * width, box[0] * height),
                                             (box[3] - box[1]) * width,
                                             (box[2] - box[0]) * height, fill=False,
                                             edgecolor="#00c853", linewidth=1.5))
        for label, score, box in predicted.get(record_id, []):
            if score < min_score:
                continue
            axis.add_patch(patches.Rectangle((box[1] * width, box[0] * height),
                                             (box[3] - box[1]) * width,
                                             (box[2] - box[0]) * height, fill=False,
                                             edgecolor="#d50000", linewidth=1.0,
                                             linestyle="--"))
            axis.text(box[1] * width, box[0] * height, f"{names[label]} {score:.2f}",
                      color="white", fontsize=6, backgroundcolor="#d50000")

    return images_figure(ids, position, test, draw)


def images_figure(ids: list[str], position: dict, test: dict, draw) -> str:
    """Test images `ids` in a grid of up to four columns, each titled by its id and marked by
    draw(axis, record id, index in test, height, width); "" for no ids."""
    if not ids:
        return ""
    columns = min(4, len(ids))
    rows = (len(ids) + columns - 1) // columns
    figure, axes = plots.grid_figure(3.0 * columns, 3.2 * rows, rows, columns, above=0.25)
    for axis in np.ravel(axes):
        axis.axis("off")
    for axis, record_id in zip(np.ravel(axes), ids):
        index = position[record_id]
        image = test["image"][index]
        axis.imshow(image if image.shape[-1] == 3 else image[..., 0], cmap="gray")
        draw(axis, record_id, index, *image.shape[:2])
        axis.set_title(record_id, fontsize=8)
    return plots._to_base64_png(figure)


def _pr_curves(curves: dict[str, dict[str, list]]) -> str:
    figure, axes = plots.grid_figure(6.0, 4.0, 1, 1, above=0.3, below=0.45)
    axis = axes[0][0]
    for name, curve in curves.items():
        axis.plot(curve["recall"], curve["precision"], label=name)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=7)
    axis.set_title("Precision-recall per class, IoU 0.5 (COCO's 101 recall points)", fontsize=9)
    return plots._to_base64_png(figure)


def summary(page: dict[str, Any]) -> dict[str, Any]:
    evaluation = page["evaluation"]
    return {"map_50": evaluation["map_50"], "map_50_95": evaluation["map_50_95"],
            "num_examples": evaluation["num_examples"],
            "ap_50_per_class": {row["name"]: row["ap_50"] for row in evaluation["per_class"]}}
