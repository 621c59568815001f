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

from edgepipe.components.evaluate import (baselines, centroids, classification, detection,
                                          forecasting, gates, generation, regression)
from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, model_inputs, registry, tasks
from edgepipe.pipeline.stage import RegistrySettings, StageConfig
from edgepipe.pipeline.spec import StageSpec


BATCH_SIZE = 256  # examples per call of the serving signature; does not change results
# What differs per task (edgepipe.contracts.tasks): metrics, artifacts, gate thresholds.
# generation scores texts its own way: its piece has its own `run`.
PIECES = {"classification": classification, "regression": regression, "detection": detection,
          "centroids": centroids, "forecasting": forecasting, "generation": generation}
# The keys of Config that only one task reads: setting one under another task is a config
# error (a gate that would silently never apply).
TASK_KEYS = {
    "classification": ("min_accuracy", "max_accuracy_drop", "top_k", "calibration_bins",
                       "confused_pairs", "labeling_queue", "labeling_queue_size"),
    "regression": ("max_mae", "max_mae_increase"),
    "detection": centroids.BOX_GATES + centroids.CENTROID_GATES,  # the piece refuses the pair
    # that does not fit the model (ssd: mAP, fomo: centroid F1), see evaluate/centroids.py
    "forecasting": ("max_smape", "max_smape_increase", "max_mase", "beat_baseline", "baselines",
                    "backtest_windows"),
    "generation": ("max_bits_per_char", "max_bits_per_char_increase"),
}
# Keys no other task has that a task does not read either (generation has no slices).
UNUSED_KEYS = {"generation": ("slices", "slice_buckets")}


class Config(StageConfig):
    # Set from [pipeline] task by the config loader (edgepipe.contracts.tasks).
    task: str = tasks.CLASSIFICATION.name
    # Classification. Absolute gate: BLESSED only when the test accuracy is at least this.
    min_accuracy: float = pydantic.Field(0.0, ge=0.0, le=1.0)
    # The pipeline's [registry] (set by the config loader, not in [evaluate]); None applies
    # no relative gate.
    registry: RegistrySettings | None = None
    # Relative gate: NOT_BLESSED when the accuracy is more than this many percentage points
    # below that of the last pushed model of the same name, on this run's test split.
    max_accuracy_drop: float = pydantic.Field(1.0, ge=0.0, le=100.0)
    # Regression. Absolute gate: BLESSED only when the test MAE (in the target's units) is at
    # most this; None applies no absolute gate.
    max_mae: float | None = pydantic.Field(None, ge=0.0)
    # Relative gate: NOT_BLESSED when the MAE is more than this fraction above that of the
    # last pushed model of the same name, on this run's test split (0.05: 5% worse).
    max_mae_increase: float = pydantic.Field(0.05, ge=0.0, le=10.0)
    # Detection. Absolute gate: BLESSED only when the test mAP@.5 (COCO, pycocotools) is at
    # least this; None applies no absolute gate.
    min_map_50: float | None = pydantic.Field(None, ge=0.0, le=1.0)
    # Relative gate: NOT_BLESSED when mAP@.5 is more than this many points below that of the
    # last pushed model of the same name, on this run's test split.
    max_map_50_drop: float = pydantic.Field(1.0, ge=0.0, le=100.0)
    # Centroid detection ([train] model = "fomo"): the same two gates on the centroid F1.
    min_centroid_f1: float | None = pydantic.Field(None, ge=0.0, le=1.0)
    max_centroid_f1_drop: float = pydantic.Field(1.0, ge=0.0, le=100.0)
    # Forecasting. Absolute gate: BLESSED only when the test sMAPE (percent, 0..200) is at
    # most this; None applies none. Relative gate: the allowed sMAPE increase as a fraction.
    max_smape: float | None = pydantic.Field(None, ge=0.0, le=200.0)
    max_smape_increase: float = pydantic.Field(0.05, ge=0.0, le=10.0)
    # NOT_BLESSED when the MASE (M4: over each series' in-sample seasonal-naive error) is
    # above this; None applies none.
    max_mase: float | None = pydantic.Field(None, ge=0.0)
    # NOT_BLESSED unless the model's MASE is below this baseline's on the same windows.
    beat_baseline: Literal["naive", "seasonal_naive", "theta", "ets"] | None = None
    # The classical forecasts fitted per series and scored beside the model
    # (components/evaluate/baselines.py).
    baselines: tuple[Literal["naive", "seasonal_naive", "theta", "ets"], ...] = baselines.NAMES
    # Rolling-origin evaluation: each series' last N horizons are N test windows; the config
    # loader hands it to ingest through [forecast] (the windows are cut there). None: as ingest
    # cut them (1 by default).
    backtest_windows: int | None = pydantic.Field(None, ge=1, le=1_000)
    # Generation. Absolute gate: BLESSED only when the test bits per character are at most
    # this; None applies no absolute gate.
    max_bits_per_char: float | None = pydantic.Field(None, gt=0.0)
    # Relative gate: NOT_BLESSED when the test bits per character are more than this fraction
    # above those of the last pushed model of the same name, on this run's test split.
    max_bits_per_char_increase: float = pydantic.Field(0.05, ge=0.0, le=10.0)
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
    # Keyword models (audio examples): a stream of about this many minutes is built from the
    # test clips between background noise and other words, and scanned as `edgepipe listen`
    # does (components/evaluate/streaming.py); 0: no streaming figures.
    stream_minutes: float = pydantic.Field(10.0, ge=0.0, le=600.0)
    stream_threshold: float = pydantic.Field(0.7, gt=0.0, le=1.0)
    stream_hop_ms: float = pydantic.Field(100.0, gt=0.0, le=10_000.0)
    stream_average_ms: float = pydantic.Field(500.0, gt=0.0, le=60_000.0)
    stream_suppression_ms: float = pydantic.Field(1000.0, ge=0.0, le=60_000.0)
    stream_tolerance_ms: float = pydantic.Field(1500.0, gt=0.0, le=60_000.0)

    @pydantic.model_validator(mode="after")
    def _fits_task(self):
        own = TASK_KEYS.get(self.task, ())
        wrong = [key for task, keys in TASK_KEYS.items() if task != self.task for key in keys
                 if key not in own and key in self.model_fields_set]
        wrong += [key for key in UNUSED_KEYS.get(self.task, ()) if key in self.model_fields_set]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not used by task {self.task!r}; see "
                             "docs/evaluation-and-report.md for each task's gates.")
        return self

    @pydantic.model_validator(mode="after")
    def _baseline_scored(self):
        if self.beat_baseline and self.beat_baseline not in self.baselines:
            raise ValueError(f"beat_baseline = {self.beat_baseline!r} is not among baselines "
                             f"{list(self.baselines)}; add it there.")
        return self

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
    if hasattr(PIECES[config.task], "run"):  # a task whose examples are not (input, label)
        return PIECES[config.task].run(inputs, outputs, config, context)
    examples = inputs["examples"].path
    model_dir = pathlib.Path(inputs["model"].path)
    # The model may make the task another of its kinds (detection by centroids: fomo).
    task = tasks.for_model(config.task, artifacts.read_model_info(model_dir).get("model", ""))
    piece = PIECES[task.name]
    names = examples_io.class_names(examples) or examples_io.target_names(examples)
    feature = examples_io.input_feature(examples)
    test = examples_io.load_numpy(examples, "test")
    labels = test[task.label_feature]
    if len(labels) == 0:
        raise ValueError(f"{examples}: the test split is empty; there is nothing to evaluate.")
    predicted = predict(model_dir, test[feature], task.output)
    def bless(value: float) -> dict[str, Any]:  # the gates on the task's primary metric
        return gates.bless(task, value, piece.gate_thresholds(config), config.registry,
                           inputs["model"].key, inputs["examples"].key, names,
                           lambda version_dir: piece.primary(
                               labels, predict(version_dir, test[feature], task.output)))

    metrics = piece.evaluate(test, predicted, inputs["examples"], feature, config, names,
                             outputs["evaluation"], model_dir, bless)
    blessing = metrics["blessing"]
    gates.write(outputs["evaluation"], blessing)
    extra = piece.extra(examples, model_dir, names, feature, outputs["evaluation"], config,
                        lambda folder, values: predict(folder, values, task.output))
    context.log.info("%s on %d test examples: %s",
                     "BLESSED" if blessing["blessed"] else "NOT_BLESSED",
                     metrics["num_examples"], blessing["reason"])
    return {**piece.properties(metrics), "blessed": blessing["blessed"],
            "reason": blessing["reason"], **extra}


def predict(model_dir: str | pathlib.Path, values, output: str = "probabilities") -> np.ndarray:
    """The `output` of a Model artifact's (or registry version's) SavedModel serving
    signature (class probabilities, or a regression model's values), batch by batch, for raw
    values prepared by its model.json."""
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
    results = [serve(**{input_name: tf.constant(batch[start:start + BATCH_SIZE])})
               for start in range(0, len(batch), BATCH_SIZE)]
    if output in results[0]:
        return np.concatenate([result[output].numpy() for result in results])
    # several outputs named "<output>_<part>" (a detector's boxes, classes, scores, count)
    return {key: np.concatenate([result[key].numpy() for result in results])
            for key in results[0] if key.startswith(f"{output}_")}


SPEC = StageSpec(
    name="evaluate", version=2, config=Config, run=run, fingerprint=fingerprint,
    inputs={"examples": "Examples", "model": "Model"}, outputs={"evaluation": "Evaluation"},
)
