"""Evaluate stage: measure the exported model on the test split and decide whether to bless it.

It runs the SavedModel's serving signature, because that is what gets deployed: a bug in the
export shows up here, not in production. Inputs go through edgepipe.contracts.model_inputs,
the one place that turns examples into the model's input batch. The package: metrics.py (pure
numpy metrics), slices.py (what the metrics are sliced by), gates.py (the absolute and the
relative blessing gate). TensorFlow is imported inside the functions that run models, so a
cached pipeline never pays for importing it.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any, Literal

import numpy as np
import pydantic

from edgepipe.components.evaluate import gates, slices
from edgepipe.components.evaluate.metrics import (calibration, compute_metrics, confused_pairs,
                                                  labeling_queue, prediction_rows, single_out,
                                                  slice_metrics, top_k_accuracy)
from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, model_inputs, registry, unlabeled_artifacts
from edgepipe.pipeline.stage import RegistrySettings, StageConfig

NAME = "evaluate"
VERSION = 2
INPUTS = {"examples": "Examples", "model": "Model"}
OUTPUTS = {"evaluation": "Evaluation"}

BATCH_SIZE = 256  # examples per call of the serving signature; does not change results


class Config(StageConfig):
    # Absolute gate: BLESSED only when the test accuracy is at least this (0..1).
    min_accuracy: float = pydantic.Field(0.0, ge=0.0, le=1.0)
    # The pipeline's [registry] (set by the config loader, not in [evaluate]); None applies
    # no relative gate.
    registry: RegistrySettings | None = None
    # Relative gate: NOT_BLESSED when the accuracy is more than this many percentage points
    # below that of the last pushed model of the same name, on this run's test split.
    max_accuracy_drop: float = pydantic.Field(1.0, ge=0.0, le=100.0)
    # k values for top-k accuracy (is the true class among the k most probable ones?).
    top_k: tuple[int, ...] = (2, 3)
    # Equal-width confidence bins of the reliability diagram and expected calibration error.
    calibration_bins: int = pydantic.Field(10, ge=2, le=100)
    # How many of the most confused (true, predicted) class pairs to list.
    confused_pairs: int = pydantic.Field(5, ge=1, le=10_000)
    # How many lowest-confidence and most confidently wrong test examples to single out.
    singled_out_examples: int = pydantic.Field(12, ge=1, le=10_000)
    # Features to slice the metrics by: "brightness" (images: mean pixel value), "length"
    # (sequences: number of steps; texts: number of tokens), or another feature of the
    # examples. None slices by the derived feature of the input kind (brightness for images,
    # length for sequences and texts).
    slices: tuple[str, ...] | None = None
    # Numeric slice features with more distinct values than this are cut into this many
    # quantile buckets (4 = quartiles of the test split).
    slice_buckets: int = pydantic.Field(4, ge=2, le=20)
    # With an unlabeled split: how labeling_queue.csv ranks its records, most useful to label
    # first: "least_confidence" (lowest top probability), "margin" (smallest gap between the
    # two most probable classes) or "entropy" (most uncertain prediction over all classes).
    labeling_queue: Literal["least_confidence", "margin", "entropy"] = "least_confidence"
    # How many records labeling_queue.csv lists; 0: every unlabelled record.
    labeling_queue_size: int = pydantic.Field(0, ge=0, le=100_000_000)

    @pydantic.field_validator("top_k")
    @classmethod
    def _positive_k(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if any(k < 1 for k in values):
            raise ValueError(f"[evaluate] top_k {list(values)}: every k must be at least 1.")
        return tuple(sorted(set(values)))


def fingerprint(config: Config, inputs) -> str:
    """The registry version the relative gate compares with (and its metrics): a new
    baseline re-runs the evaluation, a push of this same model does not."""
    if config.registry is None:
        return ""
    path, name = config.registry.path, config.registry.model_name
    version = registry.baseline_version(path, name, inputs["model"].key)
    if version is None:
        return "no baseline"
    metrics = registry.read_metadata(path, name, version).get("metrics", {})
    digest = hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()
    return f"{name} v{version} {digest[:16]}"


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    examples = inputs["examples"].path
    model_dir = pathlib.Path(inputs["model"].path)
    class_names = examples_io.class_names(examples)
    feature = examples_io.input_feature(examples)
    test = examples_io.load_numpy(examples, "test")
    labels = test["label"]
    if len(labels) == 0:
        raise ValueError(f"{examples}: the test split is empty; there is nothing to evaluate.")
    probabilities = predict(model_dir, test[feature])
    if probabilities.shape != (len(labels), len(class_names)):
        raise ValueError(
            f"{model_dir / 'saved_model'}: the model returned probabilities of shape "
            f"{probabilities.shape}, expected ({len(labels)}, {len(class_names)}) for the "
            f"{len(class_names)} classes of {examples}. Were model and examples built from the "
            "same data?"
        )
    metrics, confusion = _metrics(labels, probabilities, class_names, test, feature,
                                  inputs["examples"], config)
    rows = prediction_rows(test["id"], labels, probabilities, class_names)
    blessing = gates.bless(metrics["accuracy"], config, inputs["model"].key,
                           inputs["examples"].key, labels, class_names,
                           lambda version_dir: predict(version_dir, test[feature]))
    metrics["blessing"] = blessing
    artifacts.write_evaluation(outputs["evaluation"], metrics, class_names, confusion,
                               single_out(rows, config.singled_out_examples), rows)
    gates.write(outputs["evaluation"], blessing)
    queue = _labeling_queue(examples, model_dir, class_names, feature, outputs["evaluation"],
                            config)
    context.log.info("%s on %d test examples: %s",
                     "BLESSED" if blessing["blessed"] else "NOT_BLESSED",
                     metrics["num_examples"], blessing["reason"])
    return {
        "accuracy": metrics["accuracy"], "loss": metrics["loss"],
        "ece": metrics["calibration"]["ece"], "blessed": blessing["blessed"],
        "reason": blessing["reason"], "num_examples": metrics["num_examples"],
        **queue,
    }


def _labeling_queue(examples, model_dir, class_names, feature, evaluation_dir, config):
    """labeling_queue.csv from the serving model's predictions on the unlabeled split, and
    the stage's properties about it ({} without unlabelled examples)."""
    if "unlabeled" not in examples_io.split_names(examples) or not examples_io.split_size(
            examples, "unlabeled"):
        return {}
    unlabeled = examples_io.load_numpy(examples, "unlabeled")
    probabilities = predict(model_dir, unlabeled[feature])
    rows = labeling_queue(unlabeled["id"], probabilities, class_names,
                          unlabeled_artifacts.read_unlabeled_sources(examples),
                          config.labeling_queue, config.labeling_queue_size)
    unlabeled_artifacts.write_labeling_queue(evaluation_dir, rows)
    predicted = probabilities.argmax(axis=1)
    return {"labeling_queue": {
        "ranking": config.labeling_queue, "records": len(rows), "unlabeled": len(predicted),
        "top": [row["id"] for row in rows[:5]],
        "predicted_per_class": {name: int((predicted == index).sum())
                                for index, name in enumerate(class_names)}}}


def _metrics(labels, probabilities, class_names, test, feature, examples, config):
    """(metrics.json without the blessing, the confusion matrix)."""
    metrics = compute_metrics(labels, probabilities, class_names)
    confusion = metrics.pop("confusion")
    metrics["top_k_accuracy"] = top_k_accuracy(labels, probabilities, config.top_k)
    metrics["calibration"] = calibration(labels, probabilities, config.calibration_bins)
    metrics["confused_pairs"] = confused_pairs(confusion, class_names, config.confused_pairs)
    metrics["slices"] = {
        name: slice_metrics(values, labels, probabilities, config.slice_buckets, description)
        for name, (values, description)
        in slices.slice_features(examples, feature, test, config).items()
    }
    return metrics, confusion


def predict(model_dir: str | pathlib.Path, values) -> np.ndarray:
    """Class probabilities of a Model artifact's (or registry version's) SavedModel serving
    signature, batch by batch, for raw values prepared by its model.json."""
    import tensorflow as tf

    # A Model artifact keeps it in saved_model/; a registry version is the SavedModel itself.
    saved_model = registry.saved_model_dir(model_dir)
    if not tf.io.gfile.isdir(saved_model):
        raise FileNotFoundError(
            f"{saved_model} does not exist: a Model artifact (or registry version) must hold "
            "the SavedModel the train stage exports. Re-run train."
        )
    serve = tf.saved_model.load(saved_model).signatures["serving_default"]
    _, specs = serve.structured_input_signature
    if len(specs) != 1:
        raise ValueError(f"{saved_model}: the serving signature takes {sorted(specs)}; "
                         "expected exactly one input (the example's input feature).")
    (input_name, spec), = specs.items()
    batch = model_inputs.prepare(artifacts.read_model_info(model_dir), values)
    batch = batch.astype(spec.dtype.as_numpy_dtype, copy=False)
    return np.concatenate([
        serve(**{input_name: tf.constant(batch[start:start + BATCH_SIZE])})["probabilities"].numpy()
        for start in range(0, len(batch), BATCH_SIZE)
    ])
