"""The report's classification piece: the label distribution and examples per class, accuracy
and calibration, the confusion matrix, per-class scores, the low-confidence and confidently
wrong galleries and, with unlabelled data, the pseudo-labels and the labelling queue."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.components.report import sections, semi_supervised
from edgepipe.components.shared import examples_io

TEMPLATE = "classification.html"


def sections_of(inputs, model_dir, evaluation_dir: pathlib.Path, model_info: dict, feature: str,
                config, test: dict) -> dict[str, Any]:
    examples = inputs["examples"].path
    class_names = list(model_info["class_names"])
    train = examples_io.leading_per_class(examples, "train", config.examples_per_class,
                                          len(class_names))  # all the data section shows
    evaluation = sections.evaluation(evaluation_dir, class_names)
    data = sections.data(inputs["examples"], inputs["statistics"].path, feature, class_names,
                         train, config.examples_per_class)
    data["label_caption"] = "Label distribution: share of each class within each split."
    top_k = "".join(f", top-{k} {100 * value:.1f}%" for k, value in evaluation["top_k"].items())
    rate = int(model_info.get("sample_rate") or 0)  # audio: the clips' sample rate
    if feature == "audio":
        from edgepipe.components.report import audio

        evaluation["confused_pairs"] = audio.confused_sounds(
            evaluation["confused_pairs"], evaluation_dir, class_names, test, rate)
        evaluation["streaming"] = audio.streaming(evaluation_dir)
    return {
        "data": data,
        "evaluation": evaluation,
        "galleries": sections.galleries(evaluation_dir, test, feature,
                                        config.low_confidence_examples, rate),
        "semi_supervised": semi_supervised.section(
            model_dir, evaluation_dir, _unlabeled(examples), feature, class_names,
            config.unlabeled_truth, config.labeling_queue_examples),
        "cards": [
            {"label": "Test accuracy", "value": f"{100 * evaluation['accuracy']:.1f}%",
             "note": f"{evaluation['num_examples']} test examples, loss "
                     f"{evaluation['loss']:.3f}{top_k}"},
            {"label": "Calibration error", "value": f"{evaluation['ece']:.3f}",
             "note": f"mean confidence {100 * evaluation['mean_confidence']:.1f}% vs accuracy "
                     f"{100 * evaluation['accuracy']:.1f}%"},
        ],
    }


def _unlabeled(examples) -> dict | None:
    """The unlabeled split in memory (for the labelling queue's gallery), or None."""
    if "unlabeled" not in examples_io.split_names(examples):
        return None
    return examples_io.load_numpy(examples, "unlabeled")


def summary(page: dict[str, Any]) -> dict[str, Any]:
    """summary.json's task fields."""
    evaluation, galleries = page["evaluation"], page["galleries"]
    return {
        "accuracy": evaluation["accuracy"],
        "loss": evaluation["loss"],
        "top_k_accuracy": evaluation["top_k"],
        "ece": evaluation["ece"],
        "num_examples": evaluation["num_examples"],
        "confused_pairs": [{key: value for key, value in pair.items() if key != "sound"}
                           for pair in evaluation["confused_pairs"]],
        "slices": evaluation["slices"],
        "lowest_confidence_ids": [item["id"] for item in galleries["lowest_confidence"]["items"]],
        "most_confidently_wrong_ids": [
            item["id"] for item in galleries["most_confidently_wrong"]["items"]],
        **semi_supervised.summary(page["semi_supervised"]),
    }
