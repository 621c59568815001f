"""Evaluate stage: measure the exported model on the test split and decide whether to bless it.

It runs the SavedModel's serving signature, because that is what gets deployed: a bug in the
export shows up here, not in production. Inputs go through components.model_inputs, the one
place that turns examples into the model's input batch. This module holds the stage contract,
running the model, the slice features, the gates and the files it writes; the metrics
themselves are pure numpy functions in components/evaluate_metrics.py (re-exported here,
where run uses them). The gate has two parts: an absolute accuracy threshold, and a relative
one against the last model of the same name pushed to the registry, measured on this run's
test split. TensorFlow is imported inside the functions that run models, so a cached pipeline
never pays for importing it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import pathlib
from typing import Any

import numpy as np
import pydantic

from components import examples_io, model_inputs, text_tokens
from components.evaluate_metrics import (calibration, compute_metrics, confused_pairs,
                                         prediction_rows, single_out, slice_metrics,
                                         top_k_accuracy)
from pipeline.stage import OutputPath, StageConfig

NAME = "evaluate"
VERSION = 2
INPUTS = {"examples": "Examples", "model": "Model"}
OUTPUTS = {"evaluation": "Evaluation"}
CODE = ("components.examples_io", "components.model_inputs", "components.text_tokens",
        "serving.registry", "components.evaluate_metrics")

BATCH_SIZE = 256  # examples per call of the serving signature; does not change results


class Config(StageConfig):
    # Absolute gate: BLESSED only when the test accuracy is at least this (0..1).
    min_accuracy: float = pydantic.Field(0.0, ge=0.0, le=1.0)
    # Model registry the push stage writes to; "" applies no relative gate.
    registry: OutputPath = ""
    # Name of the model in the registry; "" means the pipeline's name.
    model_name: str = ""
    # Relative gate: NOT_BLESSED when the accuracy is more than this many percentage points
    # below that of the last pushed model of the same name, on this run's test split.
    max_accuracy_drop: float = pydantic.Field(1.0, ge=0.0, le=100.0)
    # k values for top-k accuracy (is the true class among the k most probable ones?).
    top_k: tuple[int, ...] = (2, 3)
    # Equal-width confidence bins of the reliability diagram and expected calibration error.
    calibration_bins: int = pydantic.Field(10, ge=2, le=100)
    # How many of the most confused (true, predicted) class pairs to list.
    confused_pairs: int = pydantic.Field(5, ge=1)
    # How many lowest-confidence and most confidently wrong test examples to single out.
    singled_out_examples: int = pydantic.Field(12, ge=1)
    # Features to slice the metrics by: "brightness" (images: mean pixel value), "length"
    # (sequences: number of steps; texts: number of tokens), or another feature of the
    # examples. None slices by the derived feature of the input kind (brightness for images,
    # length for sequences and texts).
    slices: tuple[str, ...] | None = None
    # Numeric slice features with more distinct values than this are cut into this many
    # quantile buckets (4 = quartiles of the test split).
    slice_buckets: int = pydantic.Field(4, ge=2, le=20)

    @pydantic.field_validator("registry", mode="wrap")
    @classmethod
    def _empty_registry_means_none(cls, value, handler):
        return "" if value == "" else handler(value)

    @pydantic.field_validator("top_k")
    @classmethod
    def _positive_k(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if any(k < 1 for k in values):
            raise ValueError(f"[evaluate] top_k {list(values)}: every k must be at least 1.")
        return tuple(sorted(set(values)))


def fingerprint(config: Config) -> str:
    """The registry state the relative gate depends on: a new push re-runs the evaluation.

    The stage cannot see the pipeline name here, so with no model_name every model in the
    registry counts (a push of another model re-evaluates too: safe, only slower).
    """
    if not config.registry:
        return ""
    from serving import registry

    names = [config.model_name] if config.model_name else registry.model_names(config.registry)
    state = {}
    for name in names:
        version = registry.latest_version(config.registry, name)
        if version is not None:
            metrics = registry.read_metadata(config.registry, name, version).get("metrics", {})
            digest = hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()
            state[name] = [version, digest[:16]]
    return json.dumps(state, sort_keys=True)


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    examples = inputs["examples"].path
    model_dir = pathlib.Path(inputs["model"].path)
    evaluation_dir = pathlib.Path(outputs["evaluation"])
    class_names = examples_io.class_names(examples)
    feature = examples_io.input_feature(examples)
    test = examples_io.load_numpy(examples, "test")
    labels = test["label"]
    if len(labels) == 0:
        raise ValueError(f"{examples}: the test split is empty; there is nothing to evaluate.")

    model_json = _read_json(model_dir / "model.json")
    probabilities = predict(model_dir / "saved_model", model_json, test[feature])
    if probabilities.shape != (len(labels), len(class_names)):
        raise ValueError(
            f"{model_dir / 'saved_model'}: the model returned probabilities of shape "
            f"{probabilities.shape}, expected ({len(labels)}, {len(class_names)}) for the "
            f"{len(class_names)} classes of {examples}. Were model and examples built from the "
            "same data?"
        )

    metrics = compute_metrics(labels, probabilities, class_names)
    confusion = metrics.pop("confusion")
    metrics["top_k_accuracy"] = top_k_accuracy(labels, probabilities, config.top_k)
    metrics["calibration"] = calibration(labels, probabilities, config.calibration_bins)
    metrics["confused_pairs"] = confused_pairs(confusion, class_names, config.confused_pairs)
    slice_values = _slice_features(inputs["examples"], feature, test, config)
    metrics["slices"] = {
        name: slice_metrics(values, labels, probabilities, config.slice_buckets, description)
        for name, (values, description) in slice_values.items()
    }
    rows = prediction_rows(test["id"], labels, probabilities, class_names)
    singled_out = single_out(rows, config.singled_out_examples)

    blessing = bless(metrics["accuracy"], config, context, inputs["examples"], test[feature],
                     labels, class_names)
    metrics["blessing"] = blessing
    _write_json(evaluation_dir / "metrics.json", metrics)
    _write_json(evaluation_dir / "confusion.json",
                {"class_names": class_names, "matrix": confusion})
    _write_json(evaluation_dir / "singled_out.json", singled_out)
    with open(evaluation_dir / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "prediction", "confidence", "entropy"])
        for row in rows:
            writer.writerow([row["id"], row["label"], row["prediction"],
                             f"{row['confidence']:.6f}", f"{row['entropy']:.6f}"])
    marker = "BLESSED" if blessing["blessed"] else "NOT_BLESSED"
    (evaluation_dir / marker).write_text(
        blessing["reason"] + "\n\n" + "\n".join(f"- {gate['name']}: {gate['reason']}"
                                                  for gate in blessing["gates"]) + "\n")
    context.log.info("%s on %d test examples: %s", marker, metrics["num_examples"],
                     blessing["reason"])
    return {
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "ece": metrics["calibration"]["ece"],
        "blessed": blessing["blessed"],
        "reason": blessing["reason"],
        "num_examples": metrics["num_examples"],
    }


def predict(saved_model: str | pathlib.Path, model_json: dict, values) -> np.ndarray:
    """Class probabilities from a SavedModel's serving signature, batch by batch."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(str(saved_model)):
        raise FileNotFoundError(
            f"{saved_model} does not exist: a Model artifact (or registry version) must hold "
            "the SavedModel the train stage exports. Re-run train."
        )
    loaded = tf.saved_model.load(str(saved_model))
    serve = loaded.signatures["serving_default"]
    _, specs = serve.structured_input_signature
    if len(specs) != 1:
        raise ValueError(f"{saved_model}: the serving signature takes {sorted(specs)}; "
                         "expected exactly one input (the example's input feature).")
    (input_name, spec), = specs.items()
    batch = model_inputs.prepare(model_json, values)
    batch = batch.astype(spec.dtype.as_numpy_dtype, copy=False)
    return np.concatenate([
        serve(**{input_name: tf.constant(batch[start:start + BATCH_SIZE])})["probabilities"].numpy()
        for start in range(0, len(batch), BATCH_SIZE)
    ])


def bless(accuracy: float, config: Config, context, examples, values, labels,
          class_names: list[str]) -> dict[str, Any]:
    """Both gates with their reasons; BLESSED only when every applied gate passes."""
    absolute_passed = accuracy >= config.min_accuracy
    gates = [{
        "name": "absolute", "applied": True, "passed": bool(absolute_passed),
        "reason": f"accuracy {accuracy:.3f} {'>=' if absolute_passed else '<'} threshold "
                  f"{config.min_accuracy:.3f}",
    }]
    gates.append(relative_gate(accuracy, config, context, examples, values, labels, class_names))
    failed = [gate for gate in gates if gate["applied"] and not gate["passed"]]
    blessed = not failed
    reason = "; ".join(gate["reason"] for gate in (failed if failed else gates)
                       if gate["applied"])
    return {"blessed": blessed, "reason": reason, "gates": gates}


def relative_gate(accuracy: float, config: Config, context, examples, values, labels,
                  class_names: list[str]) -> dict[str, Any]:
    """Compare with the last pushed model of the same name on this run's test split."""
    gate: dict[str, Any] = {"name": "relative", "applied": False, "passed": True,
                            "max_accuracy_drop_points": config.max_accuracy_drop}
    if not config.registry:
        return {**gate, "reason": "not applied: no registry configured"}
    from serving import registry

    name = config.model_name or context.pipeline_name
    version = registry.latest_version(config.registry, name)
    if version is None:
        return {**gate, "reason": f"not applied: no model named {name!r} has been pushed to "
                                  f"{config.registry} yet (this would be its first version)"}
    metadata = registry.read_metadata(config.registry, name, version)
    baseline = {"model_name": name, "version": version, "run_id": metadata.get("run_id")}
    gate["baseline"] = baseline
    if metadata.get("class_names") not in (None, list(class_names)):
        return {**gate, "reason": f"not applied: pushed {name} v{version} predicts classes "
                                  f"{metadata['class_names']}, this run's examples have "
                                  f"{list(class_names)}; their accuracies are not comparable"}
    pushed_accuracy = metadata.get("metrics", {}).get("accuracy")
    if metadata.get("examples_key") == examples.key and pushed_accuracy is not None:
        baseline.update(accuracy=float(pushed_accuracy), source="metadata")
        where = "its recorded accuracy on the same examples"
    else:
        version_dir = registry.version_path(config.registry, name, version)
        try:
            probabilities = predict(registry.join(version_dir, "saved_model"),
                                    _read_json(registry.join(version_dir, "model.json")), values)
        except (ValueError, KeyError, FileNotFoundError) as error:
            return {**gate, "reason": f"not applied: pushed {name} v{version} could not be run "
                                      f"on this test split ({error})"}
        if probabilities.shape != (len(labels), len(class_names)):
            return {**gate, "reason": f"not applied: pushed {name} v{version} returned "
                                      f"probabilities of shape {probabilities.shape}"}
        baseline.update(accuracy=float(np.mean(probabilities.argmax(axis=1) == labels)),
                        source="re-evaluated")
        where = "re-evaluated on this test split, since it was measured on other examples"
    drop = round(100.0 * (baseline["accuracy"] - accuracy), 6)
    passed = drop <= config.max_accuracy_drop
    comparison = (f"{drop:.1f} points below" if drop > 0 else f"{-drop:.1f} points above"
                  if drop < 0 else "equal to")
    reason = (f"accuracy {accuracy:.3f} is {comparison} pushed {name} v{version} "
              f"({baseline['accuracy']:.3f}, {where}); allowed drop "
              f"{config.max_accuracy_drop:g} points")
    return {**gate, "applied": True, "passed": bool(passed), "drop_points": drop, "reason": reason}


def _slice_features(examples, feature: str, test: dict, config: Config) -> dict[str, tuple]:
    """{slice name: (one value per test example, what the value means)}."""
    derived = {"image": "brightness", "sequence": "length", "text": "length"}
    names = config.slices if config.slices is not None else (derived[feature],)
    result = {}
    for name in names:
        if name == "brightness" and feature == "image":
            values = np.stack(test["image"]).reshape(len(test["label"]), -1).mean(axis=1)
            result[name] = (values, "mean pixel value of the image (0..255)")
        elif name == "length" and feature == "sequence":
            values = np.array([len(value) for value in test[feature]])
            result[name] = (values, "length of the sequence in steps")
        elif name == "length" and feature == "text":  # what the model reads: tokens
            values = np.array([len(text_tokens.tokenize(value)) for value in test[feature]])
            result[name] = (values, "length of the text in tokens (before padding or "
                                    "truncation to the model's length)")
        elif name == "label":
            raise ValueError(
                f"[evaluate] slices: {name!r} is the label itself; the per-class metrics "
                "already slice by it. Slice by a derived feature (brightness, length) instead.")
        else:
            available = sorted(set(examples_io.features(examples.path).keys())
                               - {"id", "label", feature})
            if name not in available:
                allowed = [derived[feature]] + available
                raise ValueError(f"[evaluate] slices: unknown feature {name!r} for {feature} "
                                 f"examples at {examples.path}; choose from {allowed}.")
            result[name] = (_feature_values(examples.path, name), f"feature {name!r}")
    return result


def _feature_values(path, name: str) -> np.ndarray:
    import tensorflow_datasets as tfds

    values = [record[name] for record in tfds.as_numpy(examples_io.as_dataset(path, "test"))]
    return np.array([value.decode() if isinstance(value, bytes) else value for value in values])


def _read_json(path: str | pathlib.Path) -> Any:
    """A JSON file on a local disk or (registry) object store."""
    import tensorflow as tf

    if not tf.io.gfile.exists(str(path)):
        raise FileNotFoundError(f"{path} is missing; re-run the stage that writes it.")
    with tf.io.gfile.GFile(str(path)) as handle:
        return json.loads(handle.read())


def _write_json(path: pathlib.Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
