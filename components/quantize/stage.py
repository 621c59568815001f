"""Quantize stage: convert the trained Keras model to TFLite variants, measure each, pick one.

Post-training variants (float32, dynamic_range, float16, int8, uint8, int16x8) convert the
trained model; fine-tuned ones (qat_int8: quantization-aware training, pruned_int8: magnitude
pruning) first fine-tune a copy with tensorflow-model-optimization (qat.py). Every variant is
converted from a concrete function with a fixed batch size of 1 and the model's own input
(float32 raw values with the normalisation inside the model, or int32 token ids for text; a
dynamic batch dimension breaks LSTM conversion, which must give one fused sequence-LSTM op and
builtin ops only, or fail saying why). Conversion is not always faithful, so each variant runs
on the LiteRT interpreter over the test split: the task's scores (scoring.py: accuracy and
agreement with the Keras model, or MAE and the distance to its values), size and gzip size, batch-1 latency with one thread and with all cores, peak memory, ops, and the
CPU features the latency depends on. The deploy policy (deploy_policy.py) then picks
the variant to ship: Q/deployable.json, the one place the deployable variant is chosen.

config.py holds the [quantize] config. The flow is one-directional: this module orchestrates, and every module it calls is a leaf
that calls none of the others back. convert.py (conversion recipes), qat.py (QAT and pruning
fine-tuning), metadata.py (what a device needs to feed the model: the JSON description
embedded in each .tflite and written as a sidecar `<variant>.json`, and the standard TFLite
metadata it implies, which edgepipe.components.tflite_metadata writes), device_checks.py with
mediapipe_compat.py (XNNPACK coverage, GPU op types, MediaPipe's rules, LiteRT's benchmark
tool: variants.json's "device"), measure.py (LiteRT measurements, one variant's variants.json
record), deploy_policy.py (the choice). TensorFlow and LiteRT are imported inside the
functions that use them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import pathlib
import time
from typing import Any

import numpy as np

from edgepipe.components import tflite_metadata
from edgepipe.components.quantize import (convert, deploy_policy, detection_convert, metadata,
                                          qat, scoring, standard_metadata)
from edgepipe.components.quantize.config import Config
from edgepipe.components.shared import examples_io, input_pipeline
from edgepipe.contracts import artifacts, model_inputs, tasks
from edgepipe.pipeline.stage import Artifact, Context
from edgepipe.pipeline.spec import StageSpec

# Tasks whose variants convert and score their own way, in one module each.
RUNS = {"generation": "edgepipe.components.quantize.generation"}


def _scorer(task, model, model_info, examples, test_inputs, test_labels):
    """The task's scorer, holding the Keras model's outputs on the test examples."""
    keras_outputs = model.predict(test_inputs, batch_size=256, verbose=0)
    if task.name in scoring.DECODERS:  # a detector's raw outputs, decoded as on the device
        keras_outputs = scoring.DECODERS[task.name](keras_outputs, model_info)
    # A scorer that needs more than the labels (forecasting's MASE scales) reads the Examples.
    scorer_type = scoring.SCORERS[task.name]
    if hasattr(scorer_type, "for_examples"):
        return scorer_type.for_examples(examples, test_labels, keras_outputs)
    return scorer_type(test_labels, keras_outputs)


def run(
    inputs: dict[str, Artifact], outputs: dict[str, pathlib.Path], config: Config, context: Context
) -> dict[str, Any]:
    from edgepipe.components.quantize import device_checks, measure
    from edgepipe.models.keras import keras

    if config.task in RUNS:  # a task that converts another signature than the model's call
        return importlib.import_module(RUNS[config.task]).run(inputs, outputs, config, context)
    model_dir = inputs["model"].path
    model = keras.models.load_model(model_dir / artifacts.KERAS_MODEL)
    model_info = artifacts.read_model_info(model_dir)
    examples = inputs["examples"].path
    task = tasks.for_model(config.task, model_info.get("model", ""))  # detection: centroids?
    representative, test_inputs, test_labels = _measurement_data(
        model, model_info, examples, config, context.seed, task)
    cpu = measure.cpu_description()
    context.log.info(
        "quantize: %d variants, %d representative train examples, %d test examples; CPU %s "
        "(%d cores, %s)", len(config.variants), len(representative), len(test_labels),
        cpu["model"], cpu["cores"], " ".join(cpu["features"]) or "no relevant features reported",
    )
    # The Keras figure every variant (and the deploy policy, and the report) is compared with.
    scorer = _scorer(task, model, model_info, examples, test_inputs, test_labels)
    keras_value = scorer.keras()
    context.log.info("quantize: keras %s %.4g on %d test examples", task.primary.name,
                     keras_value, len(test_labels))

    fine_tune_data = functools.cache(  # the train split as batches, built when first needed
        lambda: _fine_tune_dataset(examples, model_info, config, context.seed))
    records = []
    for variant in config.variants:
        seconds = {"fine_tune": 0.0, "convert": 0.0, "measure": 0.0}
        source, extra = model, {}
        if variant in qat.FINE_TUNED:
            with _timed(seconds, "fine_tune"):
                tuned = qat.skip_reason(model, variant) or qat.fine_tune(
                    model, variant, config, fine_tune_data(), context.log,
                    _objective(task, model_info))
            if isinstance(tuned, str):
                context.log.warning("quantize: %s skipped: %s", variant, tuned)
                records.append({"name": variant, "skipped": tuned})
                continue
            source, extra = tuned
        with _timed(seconds, "convert"):
            content, ops = _write(source, model, variant, representative, config, model_info,
                                  outputs["tflite"], inputs["model"].key)
        with _timed(seconds, "measure"):
            record = measure.variant_record(content, variant, ops, test_inputs, scorer,
                                            outputs["tflite"], context.log,
                                            config.latency_examples)
            record["device"] = device_checks.check(content, outputs["tflite"] / record["path"],
                                                   ops, benchmark=config.benchmark_tool)
            context.log.info("quantize: %-13s %s", variant, device_checks.summary(record["device"]))
        context.log.info("quantize: %-13s seconds: fine-tuning %.1f, conversion %.1f, "
                         "measurement %.1f", variant, *seconds.values())
        records.append({**record, **extra, "seconds": seconds})
    artifacts.write_variants(outputs["tflite"], records)
    return _choose(records, keras_value, task, cpu, config, outputs["tflite"], context.log)


def _objective(task, model_info: dict):
    """(loss, metrics) QAT and pruning fine-tune with: the model's task's (a regression model's
    normalised MSE or Huber, task_heads.LOSSES), without label smoothing."""
    import types

    from edgepipe.components.shared import task_heads
    from edgepipe.models.keras import keras

    settings = types.SimpleNamespace(loss=model_info.get("loss"), label_smoothing=0.0)
    return task_heads.LOSSES[task.name](keras, settings, model_info)


def _fine_tune_dataset(examples: pathlib.Path, model_info: dict, config: Config, seed: int):
    import tensorflow as tf

    from edgepipe.models.keras import keras

    keras.utils.set_random_seed(seed)
    return input_pipeline.dataset(tf, examples, "train", model_info, config.fine_tune_batch_size,
                                  seed=seed, shuffle_buffer=max(examples_io.split_size(
                                      examples, "train"), 1))


def _choose(records, keras_value: float, task, cpu: dict, config: Config,
            output_dir: pathlib.Path, log: logging.Logger) -> dict[str, Any]:
    """The deploy policy's choice, written to deployable.json; the stage's properties."""
    allowed = (config.max_accuracy_drop_points if task.primary.higher_is_better
               else config.max_metric_increase)
    try:
        deployable = deploy_policy.choose(records, keras_value, config.deploy_policy, allowed,
                                          config.deploy_latency, config.deploy_target,
                                          task.primary)
    except deploy_policy.PolicyNotSatisfied as error:
        raise deploy_policy.PolicyNotSatisfied(f"[quantize] {error}") from None
    artifacts.write_deployable(output_dir, deployable)
    log.info("quantize: deployable %s", deployable["reason"])
    summary_keys = ("name", "size_bytes", "gzip_size_bytes", *scoring.SCORERS[task.name].SUMMARY,
                    "latency_ms_p50", "latency_ms_p50_all_cores", "seconds")
    # Skipped variants are listed apart, so readers of "variants" always find measurements.
    return {
        "variants": [{key: record[key] for key in summary_keys}
                     for record in records if "skipped" not in record],
        "skipped_variants": [record for record in records if "skipped" in record],
        f"keras_{task.primary.name}": keras_value, "cpu": cpu, "deployable": deployable}


def _write(source, model, variant: str, representative, config: Config, model_info: dict,
           output_dir: pathlib.Path, model_key: str) -> tuple[bytes, list[str]]:
    """(content, op names) of `<variant>.tflite`, written with its sidecar JSON.

    Converted, then the JSON description embedded, then the standard TFLite metadata (in this
    order: embedding re-packs the flatbuffer, which would drop the zip of associated files that
    the standard metadata appends)."""
    from edgepipe.components.quantize import measure

    io_type = "uint8" if variant == "uint8" else config.int8_io
    task = tasks.of_model(model_info).name
    if task in CONVERTERS:  # a detector: the postprocess op at its end
        content = CONVERTERS[task](source, variant, representative, model_info)
    else:
        content = convert.convert(source, variant, representative, io_type)
    raw_range = (float(representative.min()), float(representative.max()))
    description = metadata.describe(content, variant, model_info, raw_range)
    content = metadata.embed(content, description)
    content = tflite_metadata.write(
        content, standard_metadata.standard(description, model_info, config, model_key))
    path = output_dir / artifacts.variant_file(variant)
    path.write_bytes(content)
    metadata.write_sidecar(path, description)
    ops = measure.op_names(content)
    convert.check_recurrent(model, variant, ops)
    return content, ops


# Tasks whose models convert by their own recipe (edgepipe.contracts.tasks names).
CONVERTERS = {"detection": detection_convert.convert}


@contextlib.contextmanager
def _timed(seconds: dict[str, float], part: str):
    """Adds the wall seconds of the block to seconds[part] (rounded to 0.01 s)."""
    started = time.monotonic()
    try:
        yield
    finally:
        seconds[part] = round(seconds[part] + time.monotonic() - started, 2)


def _measurement_data(model, model_info: dict, examples, config: Config, seed: int, task):
    """(representative train inputs, test inputs, test labels or targets), prepared as the
    model takes them; the representative examples are drawn with the pipeline seed."""
    feature = model_info["input_feature"]
    train = examples_io.load_numpy(examples, "train")
    test = examples_io.load_numpy(examples, "test")
    if config.max_test_examples is not None:
        test = {key: values[: config.max_test_examples] for key, values in test.items()}
    rng = np.random.default_rng(seed)
    count = min(config.representative_examples, len(train["id"]))
    chosen = np.sort(rng.choice(len(train["id"]), size=count, replace=False))
    representative = model_inputs.prepare(model_info, train[feature][chosen])
    test_inputs = model_inputs.prepare(model_info, test[feature])
    if test_inputs.dtype != np.int32:  # int32 token ids stay ids
        test_inputs = test_inputs.astype(np.float32, copy=False)
    model_shape = tuple(model.input_shape[1:])
    if model_shape != tuple(test_inputs.shape[1:]):
        raise ValueError(
            f"the model takes inputs of shape {model_shape} but the examples in {examples} "
            f"prepare to {tuple(test_inputs.shape[1:])}; quantize the model trained on these "
            "examples."
        )
    return representative, test_inputs, test[task.label_feature]


SPEC = StageSpec(
    name="quantize", version=2, config=Config, run=run,
    inputs={"examples": "Examples", "model": "Model"}, outputs={"tflite": "TFLiteModels"},
    code=("edgepipe.components.quantize.generation",),
)
