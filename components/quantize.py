"""Quantize stage: convert the trained Keras model to TFLite variants, measure each, pick one.

Post-training variants (float32, dynamic_range, float16, int8, int16x8) convert the trained
model; fine-tuned ones (qat_int8: quantization-aware training, pruned_int8: magnitude pruning)
first fine-tune a copy with tensorflow-model-optimization (components.qat). Every variant is
converted from a concrete function with a fixed batch size of 1 and the model's own input
(float32 raw values with the normalisation inside the model, or int32 token ids for text; a
dynamic batch dimension breaks LSTM conversion, which must give one fused sequence-LSTM op and
builtin ops only, or fail saying why). Conversion is not always faithful, so each variant runs
on the LiteRT interpreter over the test split: accuracy, agreement with the Keras model, size
and gzip size, batch-1 latency with one thread and with all cores, peak memory, ops, and the
CPU features the latency depends on. The deploy policy (components.deploy_policy) then picks
the variant to ship: Q/deployable.json. Conversion recipes live in components.tflite_convert.
Each .tflite carries its input description (components.tflite_metadata), also as a sidecar
`<variant>.json`. TensorFlow and LiteRT are imported inside the functions that use them.
"""

from __future__ import annotations

import gzip
import json
import logging
import pathlib
from typing import Any, Callable, Literal

import numpy as np
import pydantic

from components import deploy_policy, examples_io, model_inputs
from components.tflite_convert import check_recurrent, convert
from pipeline.stage import Artifact, Context, StageConfig

NAME = "quantize"
VERSION = 2
INPUTS = {"examples": "Examples", "model": "Model"}
OUTPUTS = {"tflite": "TFLiteModels"}
CODE = ("components.litert_measure", "components.examples_io", "components.model_inputs",
        "components.qat", "components.deploy_policy", "components.tflite_metadata",
        "components.tflite_convert", "components.text_tokens")

__all__ = ["Config", "run", "quantize_model", "convert"]

Variant = Literal["float32", "dynamic_range", "float16", "int8", "int16x8", "qat_int8",
                  "pruned_int8"]
ALL_VARIANTS: tuple[Variant, ...] = ("float32", "dynamic_range", "float16", "int8", "int16x8",
                                     "qat_int8", "pruned_int8")
DEFAULT_VARIANTS = ALL_VARIANTS[:-1]  # pruning only when asked for


class Config(StageConfig):
    variants: tuple[Variant, ...] = pydantic.Field(
        default=DEFAULT_VARIANTS,
        description="TFLite variants to build: float32 (no optimisation), dynamic_range "
        "(int8 weights, float activations), float16 (float16 weights), int8 (full integer, "
        "calibrated on training examples), int16x8 (16-bit activations, 8-bit weights, float "
        "input/output), qat_int8 (quantization-aware fine-tuning, then full integer; skipped "
        "for models tfmot cannot annotate, such as LSTMs), pruned_int8 (magnitude pruning "
        "while fine-tuning, then full integer).",
    )
    int8_io: Literal["int8", "uint8"] = pydantic.Field(
        default="int8", description="Input and output type of the full-integer variants "
        "(int8, qat_int8, pruned_int8): int8, or uint8 for devices that want unsigned data. "
        "The int32 token-id input of a text model stays int32.")
    representative_examples: int = pydantic.Field(
        default=200, ge=1,
        description="Training examples, drawn with the pipeline seed, that calibrate the int8 "
        "and int16x8 activation ranges.")
    max_test_examples: int | None = pydantic.Field(
        default=None, ge=1,
        description="Measure on the first N test examples; None measures the whole test split.")
    qat_epochs: int = pydantic.Field(
        default=1, ge=1, description="Epochs of quantization-aware fine-tuning on the train split.")
    qat_learning_rate: float | None = pydantic.Field(
        default=None, gt=0, description="Adam learning rate QAT starts from (it decays to 0 "
        "over qat_epochs, cosine); None: fine_tune_learning_rate.")
    pruning_epochs: int = pydantic.Field(
        default=2, ge=1, description="Epochs of fine-tuning while pruning (pruned_int8).")
    pruning_sparsity: float = pydantic.Field(
        default=0.5, gt=0.0, lt=1.0,
        description="Fraction of each prunable layer's weights set to zero (pruned_int8).")
    fine_tune_learning_rate: float = pydantic.Field(
        default=1e-4, gt=0, description="Adam learning rate of QAT and pruning fine-tuning; "
        "QAT's decays to 0 over its epochs (cosine), pruning's stays constant.")
    fine_tune_batch_size: int = pydantic.Field(
        default=64, ge=1, description="Batch size of QAT and pruning fine-tuning.")
    deploy_policy: Literal["smallest_within", "fastest_within"] = pydantic.Field(
        default="smallest_within",
        description="How to pick the deployable variant among those within "
        "max_accuracy_drop_points of Keras: the smallest file, or the lowest measured p50 "
        "batch-1 latency (see deploy_latency). None qualifying fails the stage.")
    max_accuracy_drop_points: float = pydantic.Field(
        default=1.0, ge=0.0, le=100.0,
        description="Largest accepted accuracy drop, in percentage points below the Keras "
        "model on the same test examples.")
    deploy_latency: Literal["one_thread", "all_cores"] = pydantic.Field(
        default="one_thread",
        description="Which measured latency fastest_within compares: one interpreter thread, "
        "or as many threads as this process may use.")

    @pydantic.field_validator("variants")
    @classmethod
    def _distinct_and_not_empty(cls, variants: tuple[str, ...]) -> tuple[str, ...]:
        if not variants:
            raise ValueError(f"[quantize] variants is empty; list some of {list(ALL_VARIANTS)}.")
        repeated = sorted({name for name in variants if variants.count(name) > 1})
        if repeated:
            raise ValueError(
                f"[quantize] variants lists {repeated} more than once; list each once."
            )
        return variants


def run(
    inputs: dict[str, Artifact], outputs: dict[str, pathlib.Path], config: Config, context: Context
) -> dict[str, Any]:
    from components import litert_measure, qat
    from models.keras import keras

    model_dir = inputs["model"].path
    model = keras.models.load_model(model_dir / "model.keras")
    model_json = json.loads((model_dir / "model.json").read_text())
    examples = inputs["examples"].path
    feature = examples_io.input_feature(examples)
    train = examples_io.load_numpy(examples, "train")
    test = examples_io.load_numpy(examples, "test")
    if config.max_test_examples is not None:
        test = {key: values[: config.max_test_examples] for key, values in test.items()}

    rng = np.random.default_rng(context.seed)
    count = min(config.representative_examples, len(train["label"]))
    chosen = np.sort(rng.choice(len(train["label"]), size=count, replace=False))
    representative = model_inputs.prepare(model_json, train[feature][chosen])
    test_inputs = model_inputs.prepare(model_json, test[feature])
    model_shape = tuple(model.input_shape[1:])
    if model_shape != tuple(test_inputs.shape[1:]):
        raise ValueError(
            f"{model_dir / 'model.keras'} takes inputs of shape {model_shape} but the examples "
            f"in {examples} prepare to {tuple(test_inputs.shape[1:])}; quantize the model "
            "trained on these examples."
        )
    cpu = litert_measure.cpu_description()
    context.log.info(
        "quantize: %d variants, %d representative train examples, %d test examples; CPU %s "
        "(%d cores, %s)", len(config.variants), count, len(test["label"]), cpu["model"],
        cpu["cores"], " ".join(cpu["features"]) or "no relevant features reported",
    )

    def fine_tune_data():
        keras.utils.set_random_seed(context.seed)
        if feature == "text":
            return _text_dataset(model_json, train, config.fine_tune_batch_size, context.seed)
        return qat.training_dataset(examples, model_json, config.fine_tune_batch_size,
                                    context.seed)

    raw_range = (float(representative.min()), float(representative.max()))
    records, keras_accuracy = quantize_model(
        model, representative, test_inputs, test["label"], config, outputs["tflite"],
        context.log, fine_tune_data=fine_tune_data, model_json=model_json, raw_range=raw_range,
    )
    try:
        deployable = deploy_policy.choose(records, keras_accuracy, config.deploy_policy,
                                          config.max_accuracy_drop_points, config.deploy_latency)
    except deploy_policy.PolicyNotSatisfied as error:
        raise deploy_policy.PolicyNotSatisfied(f"[quantize] {error}") from None
    deployable["metadata"] = f"{deployable['variant']}.json"
    (outputs["tflite"] / "deployable.json").write_text(json.dumps(deployable, indent=2) + "\n")
    context.log.info("quantize: deployable %s", deployable["reason"])
    summary_keys = ("name", "size_bytes", "gzip_size_bytes", "accuracy", "agreement",
                    "latency_ms_p50", "latency_ms_p50_all_cores")
    # Skipped variants are listed apart, so readers of "variants" always find measurements.
    return {
        "variants": [{key: record[key] for key in summary_keys}
                     for record in records if "skipped" not in record],
        "skipped_variants": [record for record in records if "skipped" in record],
        "keras_accuracy": keras_accuracy,
        "cpu": cpu,
        "deployable": deployable,
    }


def quantize_model(
    model, representative: np.ndarray, test_inputs: np.ndarray, test_labels: np.ndarray,
    config: Config, output_dir: pathlib.Path, log: logging.Logger,
    fine_tune_data: Callable[[], Any] | None = None, model_json: dict | None = None,
    raw_range: tuple[float, float] | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Convert, write and measure every configured variant; writes variants.json.

    Returns the variants.json records (skipped variants: {"name", "skipped": reason}) and the
    Keras model's accuracy on the same test inputs.
    """
    from components import litert_measure, qat, tflite_metadata

    if test_inputs.dtype != np.int32:  # int32 token ids stay ids
        test_inputs = test_inputs.astype(np.float32, copy=False)
    keras_predictions = np.argmax(model.predict(test_inputs, batch_size=256, verbose=0), axis=1)
    keras_accuracy = float(np.mean(keras_predictions == test_labels))
    log.info("quantize: keras accuracy %.4f on %d test examples", keras_accuracy, len(test_labels))
    model_json = model_json or {"class_names": [str(i) for i in range(model.output_shape[-1])]}
    if raw_range is None:
        raw_range = (float(representative.min()), float(representative.max()))
    cpu = litert_measure.cpu_description()
    cores = litert_measure.all_cores()
    data = None

    records = []
    for variant in config.variants:
        source, extra = model, {}
        if variant in ("qat_int8", "pruned_int8"):
            unsupported = qat.unannotatable_layers(model) if variant == "qat_int8" else []
            if unsupported:  # decided before any fine-tuning data is built
                reason = qat.QAT_UNSUPPORTED.format(layers=", ".join(unsupported))
                log.warning("quantize: %s skipped: %s", variant, reason)
                records.append({"name": variant, "skipped": reason})
                continue
            if fine_tune_data is None:
                raise ValueError(f"variant {variant!r} fine-tunes on the train split, but no "
                                 "training data was given to quantize_model.")
            data = data if data is not None else fine_tune_data()
            try:
                if variant == "qat_int8":
                    source = qat.quantization_aware(model, data, config.qat_epochs,
                                                    config.qat_learning_rate
                                                    or config.fine_tune_learning_rate, log)
                else:
                    source, sparsity = qat.prune(model, data, config.pruning_epochs,
                                                 config.fine_tune_learning_rate,
                                                 config.pruning_sparsity, log)
                    extra = {"sparsity": round(sparsity, 4)}
            except qat.QatUnsupported as reason:
                log.warning("quantize: %s skipped: %s", variant, reason)
                records.append({"name": variant, "skipped": str(reason)})
                continue
        content = convert(source, variant, representative, config.int8_io)
        description = tflite_metadata.describe(content, variant, model_json, raw_range)
        content = tflite_metadata.embed(content, description)
        path = output_dir / f"{variant}.tflite"
        path.write_bytes(content)
        tflite_metadata.write_sidecar(path, description)
        ops = litert_measure.op_names(content)
        check_recurrent(model, variant, ops)
        try:
            one = litert_measure.run(content, test_inputs, num_threads=1, name=f"variant {variant!r}")
            every = one if cores == 1 else litert_measure.run(
                content, test_inputs, num_threads=cores, name=f"variant {variant!r}")
        except (RuntimeError, ValueError) as error:
            raise RuntimeError(
                f"TFLite variant {variant!r} converted but failed on the LiteRT interpreter: "
                f"{error}"
            ) from error
        predictions = np.argmax(one.probabilities, axis=1)
        record = {
            "name": variant,
            "path": path.name,
            "metadata": f"{variant}.json",
            "size_bytes": len(content),
            "gzip_size_bytes": len(gzip.compress(content, compresslevel=9, mtime=0)),
            "accuracy": float(np.mean(predictions == test_labels)),
            "agreement": float(np.mean(predictions == keras_predictions)),
            **_latencies(one.invoke_seconds, ""),
            **_latencies(every.invoke_seconds, "_all_cores"),
            "threads_all_cores": cores,
            "peak_memory_bytes": litert_measure.peak_memory_bytes(path),
            "ops": ops,
            "builtin_only": litert_measure.builtin_only(ops),
            "input_dtype": one.input_dtype,
            "output_dtype": one.output_dtype,
            "num_examples": int(len(test_labels)),
            "cpu": cpu,
            **extra,
        }
        log.info(
            "quantize: %-13s %9d bytes (gzip %9d)  accuracy %.4f  agreement %.4f  p50 %.3f ms "
            "(1 thread) %.3f ms (%d threads)  %s", variant, record["size_bytes"],
            record["gzip_size_bytes"], record["accuracy"], record["agreement"],
            record["latency_ms_p50"], record["latency_ms_p50_all_cores"], cores,
            "builtin ops only" if record["builtin_only"] else "NEEDS NON-BUILTIN OPS",
        )
        records.append(record)
    (output_dir / "variants.json").write_text(json.dumps(records, indent=2) + "\n")
    return records, keras_accuracy


def _text_dataset(model_json: dict, train: dict, batch_size: int, seed: int):
    """(int32 token ids, label) batches of the train split for fine-tuning a text model."""
    import tensorflow as tf

    ids = model_inputs.prepare(model_json, train["text"])
    data = tf.data.Dataset.from_tensor_slices((ids, train["label"]))
    return data.shuffle(max(len(ids), 1), seed=seed, reshuffle_each_iteration=True).batch(
        batch_size).prefetch(tf.data.AUTOTUNE)


def _latencies(seconds: np.ndarray, suffix: str) -> dict[str, float]:
    milliseconds = seconds * 1000.0
    return {f"latency_ms_p50{suffix}": round(float(np.percentile(milliseconds, 50)), 5),
            f"latency_ms_p99{suffix}": round(float(np.percentile(milliseconds, 99)), 5)}
