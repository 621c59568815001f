"""Quantize stage: convert the trained Keras model to TFLite variants, measure each, pick one.

Post-training variants (float32, dynamic_range, float16, int8, uint8, int16x8) convert the
trained model; fine-tuned ones (qat_int8: quantization-aware training, pruned_int8: magnitude
pruning) first fine-tune a copy with tensorflow-model-optimization (qat.py). Every variant is
converted from a concrete function with a fixed batch size of 1 and the model's own input
(float32 raw values with the normalisation inside the model, or int32 token ids for text; a
dynamic batch dimension breaks LSTM conversion, which must give one fused sequence-LSTM op and
builtin ops only, or fail saying why). Conversion is not always faithful, so each variant runs
on the LiteRT interpreter over the test split: accuracy, agreement with the Keras model, size
and gzip size, batch-1 latency with one thread and with all cores, peak memory, ops, and the
CPU features the latency depends on. The deploy policy (deploy_policy.py) then picks
the variant to ship: Q/deployable.json, the one place the deployable variant is chosen.

The package: variants.py (fine-tune, convert, describe and measure one variant), convert.py
(conversion recipes), qat.py (QAT and pruning fine-tuning), measure.py (LiteRT measurements),
metadata.py (what a device needs to feed the model, embedded in each .tflite as JSON and
written as a sidecar `<variant>.json`), standard_metadata.py with metadata_flatbuffer.py and
metadata_specs.py (the standard TFLite metadata MediaPipe Tasks and the Task Library read:
labels, normalisation, tokenizer, packed files), device_checks.py and mediapipe_compat.py
(XNNPACK coverage, GPU op types, MediaPipe's rules, LiteRT's benchmark tool: variants.json's
"device"), deploy_policy.py (the choice). TensorFlow and LiteRT are imported inside the
functions that use them.
"""

from __future__ import annotations

import pathlib
from typing import Any, Literal

import numpy as np
import pydantic

from edgepipe.components.quantize import deploy_policy
from edgepipe.components.quantize.variants import quantize_model
from edgepipe.components.shared import examples_io, input_pipeline
from edgepipe.contracts import artifacts, model_inputs
from edgepipe.pipeline.stage import Artifact, Context, StageConfig

NAME = "quantize"
VERSION = 2
INPUTS = {"examples": "Examples", "model": "Model"}
OUTPUTS = {"tflite": "TFLiteModels"}

Variant = Literal["float32", "dynamic_range", "float16", "int8", "uint8", "int16x8",
                  "qat_int8", "pruned_int8"]
ALL_VARIANTS: tuple[Variant, ...] = ("float32", "dynamic_range", "float16", "int8", "uint8",
                                     "int16x8", "qat_int8", "pruned_int8")
DEFAULT_VARIANTS = ALL_VARIANTS[:-1]  # pruning only when asked for


class Config(StageConfig):
    variants: tuple[Variant, ...] = pydantic.Field(
        default=DEFAULT_VARIANTS,
        description="TFLite variants to build: float32 (no optimisation), dynamic_range "
        "(int8 weights, float activations), float16 (float16 weights), int8 (full integer, "
        "calibrated on training examples, input and output of type int8_io), uint8 (the same "
        "full-integer model with uint8 input and output, what MediaPipe Tasks and the TFLite "
        "Task Library take; a text model's token ids stay int32), int16x8 (16-bit activations, 8-bit weights, float "
        "input/output), qat_int8 (quantization-aware fine-tuning, then full integer; skipped "
        "for models tfmot cannot annotate, such as LSTMs), pruned_int8 (magnitude pruning "
        "while fine-tuning, then full integer).",
    )
    int8_io: Literal["int8", "uint8", "float32"] = pydantic.Field(
        default="int8", description="Input and output type of the full-integer variants "
        "int8, qat_int8 and pruned_int8: int8, or uint8 for devices that want unsigned data "
        "(the uint8 variant is always uint8), or float32: raw float input, the model's input "
        "normalisation kept in float and every layer after it in int8 (for raw features of "
        "different scales, such as a table's columns, which one int8 input scale cannot "
        "hold). The int32 token-id input of a text model stays int32.")
    benchmark_tool: bool = pydantic.Field(
        default=True, description="Also run LiteRT's benchmark tool (litert-benchmark, the "
        "CompiledModel benchmark shipped in ai-edge-litert) on each variant, one thread, and "
        "record its latency beside the interpreter's; it cannot load fused-LSTM or embedding "
        "models, which are recorded with its error. About a second per variant.")
    metadata_name: str = pydantic.Field(
        default="", description="Model name in the standard TFLite metadata of every "
        "variant; empty: '<model> <feature> classifier' (e.g. 'cnn image classifier').")
    metadata_description: str = pydantic.Field(
        default="", description="Model description in the TFLite metadata; empty: the "
        "builder, the classes and the variant.")
    metadata_version: str = pydantic.Field(
        default="", description="Model version in the TFLite metadata; empty: 'model ' and "
        "the first 12 digits of the Model artifact's key (metadata.json of a registry version "
        "records the same key as model_key).")
    metadata_author: str = pydantic.Field(
        default="", description="Author in the TFLite metadata; empty: not written.")
    metadata_license: str = pydantic.Field(
        default="", description="License in the TFLite metadata (e.g. 'Apache-2.0'); empty: "
        "not written.")
    representative_examples: int = pydantic.Field(
        default=200, ge=1, le=100_000,
        description="Training examples, drawn with the pipeline seed, that calibrate the int8 "
        "and int16x8 activation ranges.")
    max_test_examples: int | None = pydantic.Field(
        default=None, ge=1, le=100_000_000,
        description="Measure on the first N test examples; None measures the whole test split.")
    latency_examples: int | None = pydantic.Field(
        default=1000, ge=1, le=100_000_000,
        description="Time batch-1 latency (one thread and all cores) on the first N test "
        "examples; accuracy and agreement still use every test example (run on all cores "
        "at once). None times every test example (int16x8 runs LiteRT's reference kernels, "
        "about 30 ms an example on x86: minutes on a 10,000-example split).")
    qat_epochs: float = pydantic.Field(
        default=1, gt=0, le=10_000, description="Epochs of quantization-aware fine-tuning on the train "
        "split; a fraction fine-tunes on that share of an epoch's batches (0.25: a quarter).")
    qat_learning_rate: float | None = pydantic.Field(
        default=None, gt=0, description="Adam learning rate QAT starts from (it decays to 0 "
        "over qat_epochs, cosine); None: fine_tune_learning_rate.")
    pruning_epochs: float = pydantic.Field(
        default=2, gt=0, le=10_000, description="Epochs of fine-tuning while pruning (pruned_int8); a "
        "fraction fine-tunes on that share of an epoch's batches.")
    pruning_sparsity: float = pydantic.Field(
        default=0.5, gt=0.0, lt=1.0,
        description="Fraction of each prunable layer's weights set to zero (pruned_int8).")
    fine_tune_learning_rate: float = pydantic.Field(
        default=1e-4, gt=0, description="Adam learning rate of QAT and pruning fine-tuning; "
        "QAT's decays to 0 over its epochs (cosine), pruning's stays constant.")
    fine_tune_batch_size: int = pydantic.Field(
        default=64, ge=1, le=65_536, description="Batch size of QAT and pruning fine-tuning.")
    deploy_policy: Literal["smallest_within", "fastest_within"] = pydantic.Field(
        default="smallest_within",
        description="How to pick the deployable variant among those within "
        "max_accuracy_drop_points of Keras: the smallest file, or the lowest measured p50 "
        "batch-1 latency (see deploy_latency). None qualifying fails the stage.")
    max_accuracy_drop_points: float = pydantic.Field(
        default=1.0, ge=0.0, le=100.0,
        description="Largest accepted accuracy drop, in percentage points below the Keras "
        "model on the same test examples.")
    deploy_target: Literal["any", "mediapipe"] = pydantic.Field(
        default="any", description="Which variants may be deployed: any, or only those that "
        "MediaPipe Tasks' classifiers accept as they are (float32 or uint8 input and output, "
        "an RGB image input; see the mediapipe device check in variants.json).")
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
    from edgepipe.components.quantize import measure
    from edgepipe.models.keras import keras

    model_dir = inputs["model"].path
    model = keras.models.load_model(model_dir / "model.keras")
    model_info = artifacts.read_model_info(model_dir)
    examples = inputs["examples"].path
    representative, test_inputs, test_labels = _measurement_data(
        model, model_info, examples, config, context.seed)
    cpu = measure.cpu_description()
    context.log.info(
        "quantize: %d variants, %d representative train examples, %d test examples; CPU %s "
        "(%d cores, %s)", len(config.variants), len(representative), len(test_labels),
        cpu["model"], cpu["cores"], " ".join(cpu["features"]) or "no relevant features reported",
    )

    def fine_tune_data():
        import tensorflow as tf

        keras.utils.set_random_seed(context.seed)
        size = examples_io.split_size(examples, "train")
        return input_pipeline.dataset(tf, examples, "train", model_info,
                                      config.fine_tune_batch_size, seed=context.seed,
                                      shuffle_buffer=max(size, 1))

    records, keras_accuracy = quantize_model(
        model, representative, test_inputs, test_labels, config, outputs["tflite"],
        context.log, fine_tune_data=fine_tune_data, model_info=model_info,
        model_key=inputs["model"].key,
    )
    try:
        deployable = deploy_policy.choose(records, keras_accuracy, config.deploy_policy,
                                          config.max_accuracy_drop_points, config.deploy_latency,
                                          config.deploy_target)
    except deploy_policy.PolicyNotSatisfied as error:
        raise deploy_policy.PolicyNotSatisfied(f"[quantize] {error}") from None
    artifacts.write_deployable(outputs["tflite"], deployable)
    context.log.info("quantize: deployable %s", deployable["reason"])
    summary_keys = ("name", "size_bytes", "gzip_size_bytes", "accuracy", "agreement",
                    "latency_ms_p50", "latency_ms_p50_all_cores", "seconds")
    # Skipped variants are listed apart, so readers of "variants" always find measurements.
    return {
        "variants": [{key: record[key] for key in summary_keys}
                     for record in records if "skipped" not in record],
        "skipped_variants": [record for record in records if "skipped" in record],
        "keras_accuracy": keras_accuracy,
        "cpu": cpu,
        "deployable": deployable,
    }


def _measurement_data(model, model_info: dict, examples, config: Config, seed: int):
    """(representative train inputs, test inputs, test labels), prepared as the model takes
    them; the representative examples are drawn with the pipeline seed."""
    feature = model_info["input_feature"]
    train = examples_io.load_numpy(examples, "train")
    test = examples_io.load_numpy(examples, "test")
    if config.max_test_examples is not None:
        test = {key: values[: config.max_test_examples] for key, values in test.items()}
    rng = np.random.default_rng(seed)
    count = min(config.representative_examples, len(train["label"]))
    chosen = np.sort(rng.choice(len(train["label"]), size=count, replace=False))
    representative = model_inputs.prepare(model_info, train[feature][chosen])
    test_inputs = model_inputs.prepare(model_info, test[feature])
    model_shape = tuple(model.input_shape[1:])
    if model_shape != tuple(test_inputs.shape[1:]):
        raise ValueError(
            f"the model takes inputs of shape {model_shape} but the examples in {examples} "
            f"prepare to {tuple(test_inputs.shape[1:])}; quantize the model trained on these "
            "examples."
        )
    return representative, test_inputs, test["label"]
