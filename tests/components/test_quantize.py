"""The quantize stage: every TFLite variant converts, runs on LiteRT and is measured honestly."""

from __future__ import annotations

import json

import numpy as np
import pydantic
import pytest

from components import litert_measure, quantize

ALL = ("float32", "dynamic_range", "float16", "int8")


def variants_by_name(artifact) -> dict[str, dict]:
    records = json.loads((artifact.path / "variants.json").read_text())
    return {record["name"]: record for record in records}


def test_every_variant_converts_runs_and_is_recorded(tflite_artifact, examples_artifact):
    from components import examples_io

    records = variants_by_name(tflite_artifact)
    assert tuple(records) == ALL
    test_size = examples_io.split_size(examples_artifact.path, "test")
    for name, record in records.items():
        path = tflite_artifact.path / record["path"]
        assert path.name == f"{name}.tflite"
        assert record["size_bytes"] == path.stat().st_size > 0
        assert record["num_examples"] == test_size
        assert 0.0 <= record["accuracy"] <= 1.0 and 0.0 <= record["agreement"] <= 1.0
        assert 0.0 < record["latency_ms_p50"] <= record["latency_ms_p99"]
        assert record["builtin_only"] is True
        assert "CONV_2D" in record["ops"] and record["ops"] == sorted(set(record["ops"]))
        # Every file really loads and runs on the LiteRT interpreter.
        run = litert_measure.run(path.read_bytes(), np.zeros((2, 28, 28, 1), np.float32), warmup=0)
        assert run.probabilities.shape == (2, 10)
        assert run.input_dtype == record["input_dtype"]
        assert run.output_dtype == record["output_dtype"]


def test_int8_variant_is_full_integer_builtin_small_and_faithful(tflite_artifact):
    from ai_edge_litert.interpreter import Interpreter

    records = variants_by_name(tflite_artifact)
    int8 = records["int8"]
    interpreter = Interpreter(model_path=str(tflite_artifact.path / "int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert (int8["input_dtype"], int8["output_dtype"]) == ("int8", "int8")
    assert int8["builtin_only"] and not any(op.startswith("Flex") for op in int8["ops"])
    assert int8["size_bytes"] <= 0.30 * records["float32"]["size_bytes"]
    assert int8["agreement"] >= 0.9


def test_float32_variant_reproduces_keras(tflite_artifact, model_artifact, examples_artifact):
    from components import examples_io
    from models.keras import keras

    records = variants_by_name(tflite_artifact)
    assert records["float32"]["agreement"] >= 0.99
    assert records["float32"]["input_dtype"] == records["float32"]["output_dtype"] == "float32"
    images = examples_io.load_numpy(examples_artifact.path, "test")["image"][:5].astype(np.float32)
    model = keras.models.load_model(model_artifact.path / "model.keras")
    expected = model.predict(images, verbose=0)
    content = (tflite_artifact.path / "float32.tflite").read_bytes()
    actual = litert_measure.run(content, images, warmup=0).probabilities
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_properties_summarise_variants_against_keras(tflite_artifact):
    properties = tflite_artifact.properties
    records = variants_by_name(tflite_artifact)
    assert [variant["name"] for variant in properties["variants"]] == list(ALL)
    for variant in properties["variants"]:
        record = records[variant["name"]]
        for key in ("size_bytes", "accuracy", "agreement", "latency_ms_p50"):
            assert variant[key] == record[key]
    if records["float32"]["agreement"] == 1.0:  # same predictions, so the same accuracy
        assert properties["keras_accuracy"] == pytest.approx(records["float32"]["accuracy"])


def test_int8_calibration_follows_seed_and_config(
    run_stage, examples_artifact, model_artifact, tflite_artifact
):
    inputs = {"examples": examples_artifact, "model": model_artifact}
    config = {"variants": ["int8"], "representative_examples": 50, "max_test_examples": 20}
    _, same_seed = run_stage("quantize", inputs, config, seed=7)
    _, other_seed = run_stage("quantize", inputs, config, seed=8)
    same = same_seed["tflite"].path
    assert sorted(path.name for path in same.glob("*.tflite")) == ["int8.tflite"]
    assert variants_by_name(same_seed["tflite"])["int8"]["num_examples"] == 20
    fixture_bytes = (tflite_artifact.path / "int8.tflite").read_bytes()  # fixture ran with seed 7
    assert (same / "int8.tflite").read_bytes() == fixture_bytes
    assert (other_seed["tflite"].path / "int8.tflite").read_bytes() != fixture_bytes


@pytest.mark.parametrize(
    "config, message",
    [
        ({"variants": ["int4"]}, "int4"),
        ({"variants": ["int8", "int8"]}, "more than once"),
        ({"variants": []}, "empty"),
        ({"representative_examples": 0}, "greater than or equal to 1"),
        ({"num_thread": 2}, "num_thread"),
    ],
)
def test_config_rejects_bad_values(config, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        quantize.Config.model_validate(config)


def test_conversion_failure_names_the_variant_and_the_reason():
    import tensorflow as tf

    from models.keras import keras

    inputs = keras.Input((3, 3), dtype="float32")
    # MatrixDeterminant has no TFLite builtin kernel: conversion must fail, not fall back.
    outputs = keras.layers.Lambda(lambda matrix: tf.reshape(tf.linalg.det(matrix), (-1, 1)))(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(RuntimeError, match=r"(?s)variant 'float32' failed.*MatrixDeterminant"):
        quantize.convert(model, "float32", np.zeros((2, 3, 3), np.float32))
