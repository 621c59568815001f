"""Quantize stage: convert the trained Keras model to TFLite variants and measure each on LiteRT.

Every variant is converted from a concrete function with a fixed batch size of 1 and raw
float32 input (normalisation stays inside the model); a dynamic batch dimension breaks LSTM
conversion. Conversion is not always faithful, so each variant is run on the LiteRT interpreter
over the test split and compared with the Keras model's own predictions (agreement) and with
the labels (accuracy), besides its size, batch-1 latency and the ops it contains.
TensorFlow and LiteRT are imported inside the functions that use them, so a fully cached
pipeline never pays for importing them.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any, Literal

import numpy as np
import pydantic

from pipeline.stage import Artifact, Context, StageConfig

NAME = "quantize"
VERSION = 1
INPUTS = {"examples": "Examples", "model": "Model"}
OUTPUTS = {"tflite": "TFLiteModels"}
CODE = ("components.litert_measure", "components.examples_io")

Variant = Literal["float32", "dynamic_range", "float16", "int8"]
ALL_VARIANTS: tuple[Variant, ...] = ("float32", "dynamic_range", "float16", "int8")


class Config(StageConfig):
    variants: tuple[Variant, ...] = pydantic.Field(
        default=ALL_VARIANTS,
        description="TFLite variants to build: float32 (no optimisation), dynamic_range "
        "(int8 weights, float activations), float16 (float16 weights), int8 (full integer, "
        "int8 input and output, calibrated on training examples).",
    )
    representative_examples: int = pydantic.Field(
        default=200,
        ge=1,
        description="Training examples, drawn with the pipeline seed, that calibrate the int8 "
        "activation ranges.",
    )
    max_test_examples: int | None = pydantic.Field(
        default=None,
        ge=1,
        description="Measure accuracy, agreement and latency on the first N test examples; "
        "None measures the whole test split.",
    )
    num_threads: int = pydantic.Field(
        default=1, ge=1, description="LiteRT interpreter threads for the latency measure."
    )

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
    from components import examples_io
    from models.keras import keras

    model_path = inputs["model"].path / "model.keras"
    model = keras.models.load_model(model_path)
    examples = inputs["examples"].path
    train = examples_io.load_numpy(examples, "train")
    test = examples_io.load_numpy(examples, "test")
    if config.max_test_examples is not None:
        test = {key: values[: config.max_test_examples] for key, values in test.items()}

    model_shape = tuple(model.input_shape[1:])
    data_shape = tuple(train["image"].shape[1:])
    if model_shape != data_shape:
        raise ValueError(
            f"{model_path} takes inputs of shape {model_shape} but the examples in {examples} "
            f"have shape {data_shape}; quantize the model trained on these examples."
        )
    rng = np.random.default_rng(context.seed)
    count = min(config.representative_examples, len(train["image"]))
    chosen = np.sort(rng.choice(len(train["image"]), size=count, replace=False))
    representative = train["image"][chosen].astype(np.float32)
    context.log.info(
        "quantize: %d variants, %d representative train examples, %d test examples",
        len(config.variants), count, len(test["image"]),
    )
    records, keras_accuracy = quantize_model(
        model, representative, test["image"], test["label"], config, outputs["tflite"], context.log
    )
    summary_keys = ("name", "size_bytes", "accuracy", "agreement", "latency_ms_p50")
    return {
        "variants": [{key: record[key] for key in summary_keys} for record in records],
        "keras_accuracy": keras_accuracy,
    }


def quantize_model(
    model, representative: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray,
    config: Config, output_dir: pathlib.Path, log: logging.Logger,
) -> tuple[list[dict[str, Any]], float]:
    """Convert, write and measure every configured variant; writes variants.json.

    Returns the variants.json records and the Keras model's accuracy on the same test inputs.
    """
    from components import litert_measure

    test_inputs = test_images.astype(np.float32)
    keras_probabilities = model.predict(test_inputs, batch_size=256, verbose=0)
    keras_predictions = np.argmax(keras_probabilities, axis=1)
    keras_accuracy = float(np.mean(keras_predictions == test_labels))
    log.info("quantize: keras accuracy %.4f on %d test examples", keras_accuracy, len(test_labels))

    records = []
    for variant in config.variants:
        content = convert(model, variant, representative)
        path = output_dir / f"{variant}.tflite"
        path.write_bytes(content)
        try:
            measured = litert_measure.run(
                content, test_inputs, num_threads=config.num_threads, name=f"variant {variant!r}"
            )
        except (RuntimeError, ValueError) as error:
            raise RuntimeError(
                f"TFLite variant {variant!r} converted but failed on the LiteRT interpreter: "
                f"{error}"
            ) from error
        predictions = np.argmax(measured.probabilities, axis=1)
        ops = litert_measure.op_names(content)
        latencies_ms = measured.invoke_seconds * 1000.0
        record = {
            "name": variant,
            "path": path.name,
            "size_bytes": len(content),
            "accuracy": float(np.mean(predictions == test_labels)),
            "agreement": float(np.mean(predictions == keras_predictions)),
            "latency_ms_p50": round(float(np.percentile(latencies_ms, 50)), 5),
            "latency_ms_p99": round(float(np.percentile(latencies_ms, 99)), 5),
            "ops": ops,
            "builtin_only": litert_measure.builtin_only(ops),
            "input_dtype": measured.input_dtype,
            "output_dtype": measured.output_dtype,
            "num_examples": int(len(test_labels)),
        }
        log.info(
            "quantize: %-13s %9d bytes  accuracy %.4f  agreement %.4f  p50 %.3f ms  "
            "p99 %.3f ms  %s",
            variant, record["size_bytes"], record["accuracy"], record["agreement"],
            record["latency_ms_p50"], record["latency_ms_p99"],
            "builtin ops only" if record["builtin_only"] else "NEEDS NON-BUILTIN OPS",
        )
        records.append(record)
    (output_dir / "variants.json").write_text(json.dumps(records, indent=2) + "\n")
    return records, keras_accuracy


def convert(model, variant: str, representative: np.ndarray) -> bytes:
    """The TFLite flatbuffer of one variant; raises naming the variant if conversion fails."""
    import tensorflow as tf

    example_shape = tuple(model.input_shape[1:])

    @tf.function
    def serve(image):
        return model(image, training=False)

    # Fixed batch 1: the shape a device invokes with, and the one LSTMs need to convert.
    signature = tf.TensorSpec((1, *example_shape), tf.float32, name="image")
    function = serve.get_concrete_function(signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":

        def representative_dataset():
            for row in representative:
                yield [row[np.newaxis].astype(np.float32)]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as error:  # the converter raises several unrelated types
        raise RuntimeError(
            f"TFLite conversion of variant {variant!r} failed ({type(error).__name__}): {error}. "
            "Remove the variant from [quantize] variants or change the model; no variant is "
            "ever replaced by a fallback."
        ) from error
