"""The quantize stage: every TFLite variant converts, runs on LiteRT and is measured honestly.

CNN variants use the session's Fashion-MNIST fixture; LSTM variants a JapaneseVowels model
trained for one epoch through the real ingest, statistics and train stages.
"""

from __future__ import annotations

import json

import numpy as np
import pydantic
import pytest

from edgepipe.components.quantize import convert, deploy_policy
from edgepipe.components.quantize import measure as litert_measure
from edgepipe.components.quantize import metadata as tflite_metadata
from edgepipe.components.quantize import stage as quantize
from edgepipe.components.shared import examples_io
from edgepipe.contracts import model_inputs
from tests.conftest import LSTM_VARIANTS

ALL = ("float32", "dynamic_range", "float16", "int8", "uint8", "int16x8", "qat_int8")


def variants_by_name(artifact) -> dict[str, dict]:
    records = json.loads((artifact.path / "variants.json").read_text())
    return {record["name"]: record for record in records}


def test_every_variant_converts_runs_and_is_recorded(tflite_artifact, examples_artifact):
    from edgepipe.components.shared import examples_io

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
        assert 0.0 < record["latency_ms_p50_all_cores"] <= record["latency_ms_p99_all_cores"]
        assert record["threads_all_cores"] == litert_measure.all_cores()
        assert 0 < record["gzip_size_bytes"] < record["size_bytes"]
        assert record["peak_memory_bytes"] > 0  # Linux: measured in a fresh process
        assert record["builtin_only"] is True
        assert "CONV_2D" in record["ops"] and record["ops"] == sorted(set(record["ops"]))
        # Every file really loads and runs on the LiteRT interpreter.
        run = litert_measure.run(path.read_bytes(), np.zeros((2, 28, 28, 1), np.float32), warmup=0)
        assert run.outputs.shape == (2, 10)
        assert run.input_dtype == record["input_dtype"]
        assert run.output_dtype == record["output_dtype"]


def test_latency_is_reported_with_this_cpus_features(tflite_artifact):
    flags = set()
    for line in open("/proc/cpuinfo"):
        if line.startswith(("flags", "Features")):
            flags = set(line.split(":", 1)[1].split())
    cpu = tflite_artifact.properties["cpu"]
    assert set(cpu["features"]) == flags & set(litert_measure.CPU_FEATURES)
    assert cpu["int8_dot_product"] == bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & flags)
    assert all(record["cpu"] == cpu for record in variants_by_name(tflite_artifact).values())


def test_cpu_description_reads_arm_and_x86_flags():
    arm = "processor : 0\nFeatures : fp asimd evtstrm aes asimddp sve\nCPU part : 0xd0c\n"
    assert litert_measure.cpu_description(arm)["features"] == ["asimd", "asimddp", "sve"]
    assert litert_measure.cpu_description(arm)["int8_dot_product"] is True
    x86 = "model name : Some CPU\nflags : fpu sse avx2 fma\n"
    described = litert_measure.cpu_description(x86)
    assert (described["model"], described["features"]) == ("Some CPU", ["avx2", "fma"])
    assert described["int8_dot_product"] is False


def test_each_variant_carries_its_input_description(tflite_artifact, model_artifact):
    from ai_edge_litert.interpreter import Interpreter

    class_names = json.loads((model_artifact.path / "model.json").read_text())["class_names"]
    for name, record in variants_by_name(tflite_artifact).items():
        path = tflite_artifact.path / record["path"]
        sidecar = json.loads((tflite_artifact.path / record["metadata"]).read_text())
        assert record["metadata"] == f"{name}.json"
        assert tflite_metadata.read_embedded(path.read_bytes()) == sidecar
        assert sidecar["class_names"] == class_names
        detail = Interpreter(model_path=str(path)).get_input_details()[0]
        assert sidecar["input"]["dtype"] == np.dtype(detail["dtype"]).name == record["input_dtype"]
        assert sidecar["input"]["shape"] == [1, 28, 28, 1]
        assert (sidecar["input"]["scale"], sidecar["input"]["zero_point"]) == pytest.approx(
            detail["quantization"])
        assert sidecar["input"]["raw_range"] == [0.0, 255.0]  # raw pixels, as ingest stores


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


def test_int16x8_variant_has_16_bit_activations_and_float_io(tflite_artifact):
    from ai_edge_litert.interpreter import Interpreter

    record = variants_by_name(tflite_artifact)["int16x8"]
    interpreter = Interpreter(model_path=str(tflite_artifact.path / "int16x8.tflite"))
    dtypes = {np.dtype(tensor["dtype"]).name for tensor in interpreter.get_tensor_details()}
    assert {"int16", "int8"} <= dtypes  # 16-bit activations, 8-bit weights
    assert (record["input_dtype"], record["output_dtype"]) == ("float32", "float32")
    assert record["agreement"] >= 0.9


def test_uint8_io_is_chosen_by_config(run_stage, examples_artifact, model_artifact):
    from ai_edge_litert.interpreter import Interpreter

    inputs = {"examples": examples_artifact, "model": model_artifact}
    config = {"variants": ["float32", "int8"], "int8_io": "uint8", "representative_examples": 50,
              "max_test_examples": 20, "benchmark_tool": False}
    _, artifacts = run_stage("quantize", inputs, config)
    record = variants_by_name(artifacts["tflite"])["int8"]
    assert (record["input_dtype"], record["output_dtype"]) == ("uint8", "uint8")
    detail = Interpreter(model_path=str(artifacts["tflite"].path / "int8.tflite")).get_input_details()[0]
    assert detail["dtype"] == np.uint8
    # Raw pixels 0..255 map onto uint8 almost one to one.
    assert detail["quantization"][0] == pytest.approx(1.0, rel=0.01)
    assert record["agreement"] >= 0.9


def test_float32_variant_reproduces_keras(tflite_artifact, model_artifact, examples_artifact):
    from edgepipe.components.shared import examples_io
    from edgepipe.models.keras import keras

    records = variants_by_name(tflite_artifact)
    assert records["float32"]["agreement"] >= 0.99
    assert records["float32"]["input_dtype"] == records["float32"]["output_dtype"] == "float32"
    images = examples_io.load_numpy(examples_artifact.path, "test")["image"][:5].astype(np.float32)
    model = keras.models.load_model(model_artifact.path / "model.keras")
    expected = model.predict(images, verbose=0)
    content = (tflite_artifact.path / "float32.tflite").read_bytes()
    actual = litert_measure.run(content, images, warmup=0).outputs
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_properties_summarise_variants_against_keras(tflite_artifact):
    properties = tflite_artifact.properties
    records = variants_by_name(tflite_artifact)
    assert [variant["name"] for variant in properties["variants"]] == list(ALL)
    for variant in properties["variants"]:
        record = records[variant["name"]]
        for key in ("size_bytes", "gzip_size_bytes", "accuracy", "agreement", "latency_ms_p50",
                    "latency_ms_p50_all_cores"):
            assert variant[key] == record[key]
    if records["float32"]["agreement"] == 1.0:  # same predictions, so the same accuracy
        assert properties["keras_accuracy"] == pytest.approx(records["float32"]["accuracy"])


def test_each_variant_records_where_its_time_went(tflite_artifact):
    records = variants_by_name(tflite_artifact)
    summary = {variant["name"]: variant for variant in tflite_artifact.properties["variants"]}
    for name, record in records.items():
        seconds = record["seconds"]
        assert set(seconds) == {"fine_tune", "convert", "measure"}
        assert seconds["convert"] > 0 and seconds["measure"] > 0
        assert (seconds["fine_tune"] > 0) == (name == "qat_int8")  # only QAT fine-tunes here
        assert summary[name]["seconds"] == seconds  # the run summary shows the same split


def test_latency_is_timed_on_a_subsample_and_accuracy_on_every_test_example(
        run_stage, examples_artifact, model_artifact, tflite_artifact, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="edgepipe")
    inputs = {"examples": examples_artifact, "model": model_artifact}
    _, artifacts = run_stage("quantize", inputs, {
        "variants": ["int8", "qat_int8"], "latency_examples": 10, "qat_epochs": 0.5,
        "representative_examples": 50, "benchmark_tool": False})
    records = variants_by_name(artifacts["tflite"])
    full = variants_by_name(tflite_artifact)
    test_size = examples_io.split_size(examples_artifact.path, "test")
    steps = round(0.5 * -(-examples_io.split_size(examples_artifact.path, "train") // 64))
    assert any(f"QAT fine-tuned 0.5 epoch(s) ({steps} steps)" in record.getMessage()
               for record in caplog.records)
    for record in records.values():
        assert (record["num_examples"], record["latency_examples"]) == (test_size, 10)
    # The same int8 file measured on every test example, split among interpreters: the
    # accuracy of the fixture's run, whose latency was timed on all of them.
    assert full["int8"]["latency_examples"] == test_size
    assert records["int8"]["accuracy"] == full["int8"]["accuracy"]
    assert records["int8"]["agreement"] == full["int8"]["agreement"]


def test_parallel_prediction_equals_one_interpreter(tflite_artifact, examples_artifact):
    test = examples_io.load_numpy(examples_artifact.path, "test")
    images = test["image"].astype(np.float32)
    content = (tflite_artifact.path / "int16x8.tflite").read_bytes()
    one = litert_measure.run(content, images, warmup=0).outputs
    np.testing.assert_array_equal(litert_measure.predict(content, images, workers=3), one)


def test_deployable_variant_follows_the_default_policy(tflite_artifact):
    deployable = json.loads((tflite_artifact.path / "deployable.json").read_text())
    records = json.loads((tflite_artifact.path / "variants.json").read_text())
    keras_accuracy = tflite_artifact.properties["keras_accuracy"]
    within = [record for record in records
              if 100 * (keras_accuracy - record["accuracy"]) <= 1.0 + 1e-9]
    smallest = min(within, key=lambda record: record["size_bytes"])
    assert deployable["variant"] == smallest["name"]
    assert deployable["path"] == smallest["path"] and (tflite_artifact.path / deployable["path"]).is_file()
    assert deployable["policy"]["name"] == "smallest_within"
    assert deployable["policy"]["max_accuracy_drop_points"] == 1.0
    assert smallest["name"] in deployable["reason"]
    assert tflite_artifact.properties["deployable"] == deployable


@pytest.mark.parametrize(
    "config, message",
    [
        ({"variants": ["int4"]}, "int4"),
        ({"variants": ["int8", "int8"]}, "more than once"),
        ({"variants": []}, "empty"),
        ({"representative_examples": 0}, "greater than or equal to 1"),
        ({"num_thread": 2}, "num_thread"),
        ({"int8_io": "int16"}, "int8_io"),
        ({"pruning_sparsity": 1.0}, "less than 1"),
        ({"deploy_policy": "best"}, "smallest_within"),
        ({"max_accuracy_drop_points": -1}, "greater than or equal to 0"),
    ],
)
def test_config_rejects_bad_values(config, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        quantize.Config.model_validate(config)


def test_conversion_failure_names_the_variant_and_the_reason():
    import tensorflow as tf

    from edgepipe.models.keras import keras

    inputs = keras.Input((3, 3), dtype="float32")
    # MatrixDeterminant has no TFLite builtin kernel: conversion must fail, not fall back.
    outputs = keras.layers.Lambda(lambda matrix: tf.reshape(tf.linalg.det(matrix), (-1, 1)))(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(RuntimeError, match=r"(?s)variant 'float32' failed.*MatrixDeterminant"):
        convert.convert(model, "float32", np.zeros((2, 3, 3), np.float32))


# ---------------------------------------------------------------- LSTM (issue 4)


def test_every_lstm_variant_is_one_fused_op_with_builtin_ops_only(vowels_tflite):
    properties, artifact = vowels_tflite
    records = variants_by_name(artifact)
    assert tuple(records) == LSTM_VARIANTS
    for name in ("float32", "dynamic_range", "float16", "int8"):
        record = records[name]
        assert record["ops"].count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 1
        assert "WHILE" not in record["ops"] and record["builtin_only"] is True
        assert not any(op.startswith("Flex") for op in record["ops"])
        assert record["num_examples"] == 60 and record["latency_ms_p50"] > 0
        content = (artifact.path / record["path"]).read_bytes()
        sidecar = tflite_metadata.read_embedded(content)
        assert sidecar["input"]["feature"] == "sequence" and sidecar["input"]["padding"] == "pre"
        assert sidecar["reset_variables_between_examples"] is True
        shape = sidecar["input"]["shape"]
        run = litert_measure.run(content, np.zeros((3, *shape[1:]), np.float32), warmup=0)
        assert run.outputs.shape == (3, 9)
    assert records["float32"]["agreement"] >= 0.99
    assert (records["int8"]["input_dtype"], records["int8"]["output_dtype"]) == ("int8", "int8")
    assert records["int8"]["agreement"] >= 0.8
    assert properties["deployable"]["variant"] in records


def test_lstm_state_does_not_leak_from_one_example_into_the_next(vowels_model, vowels_tflite):
    from edgepipe.components.shared import examples_io
    from edgepipe.contracts import model_inputs
    from edgepipe.models.keras import keras

    examples, model = vowels_model
    model_json = json.loads((model.path / "model.json").read_text())
    # Short (heavily padded) series after long ones: where a carried-over state shows most.
    test = examples_io.load_numpy(examples.path, "test")
    order = np.argsort([-len(series) for series in test["sequence"]])
    inputs = model_inputs.prepare(model_json, test["sequence"][np.r_[order[:15], order[-15:]]])
    expected = keras.models.load_model(model.path / "model.keras").predict(inputs, verbose=0)
    content = (vowels_tflite[1].path / "float32.tflite").read_bytes()
    actual = litert_measure.run(content, inputs, warmup=3).outputs
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_qat_on_an_lstm_is_skipped_with_the_documented_message(vowels_tflite):
    from edgepipe.components.quantize import qat

    properties, artifact = vowels_tflite
    skipped = variants_by_name(artifact)["qat_int8"]
    assert set(skipped) == {"name", "skipped"}
    assert skipped["skipped"] == qat.QAT_UNSUPPORTED.format(layers="lstm1 (LSTM)")
    assert not (artifact.path / "qat_int8.tflite").exists()
    assert properties["skipped_variants"] == [skipped]
    assert "qat_int8" not in [variant["name"] for variant in properties["variants"]]


def test_int16x8_lstm_fails_saying_why_and_which_variants_work(vowels_model):
    from edgepipe.models.keras import keras

    _, model = vowels_model
    lstm = keras.models.load_model(model.path / "model.keras")
    representative = np.zeros((4, *lstm.input_shape[1:]), np.float32)
    with pytest.raises(RuntimeError) as raised:
        convert.convert(lstm, "int16x8", representative)
    message = str(raised.value)
    assert "variant 'int16x8' failed" in message and "UNIDIRECTIONAL_SEQUENCE_LSTM" in message
    assert "int8 and dynamic_range variants" in message and "no variant is ever replaced" in message


def test_a_policy_no_variant_satisfies_fails_the_stage_with_the_table(run_stage, vowels_model):
    examples, model = vowels_model
    # QAT cannot run on the LSTM, so no variant is measured and none can be deployed.
    config = {"variants": ["qat_int8"], "max_test_examples": 10, "representative_examples": 10}
    with pytest.raises(deploy_policy.PolicyNotSatisfied) as raised:
        run_stage("quantize", {"examples": examples, "model": model}, config)
    message = str(raised.value)
    assert message.startswith("[quantize] deploy policy 'smallest_within'")
    assert "qat_int8  skipped: quantization-aware training skipped" in message


def test_text_variants_take_int32_ids_and_fuse_the_lstm(text_tflite_artifact,
                                                        text_model_artifact,
                                                        text_examples_artifact):
    from edgepipe.models.keras import keras

    variants = variants_by_name(text_tflite_artifact)
    for name in ("float32", "dynamic_range", "int8"):
        record = variants[name]
        assert record["input_dtype"] == "int32", name  # token ids are never quantized
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in record["ops"], (name, record["ops"])
        assert {"GATHER", "EMBEDDING_LOOKUP"} & set(record["ops"]), (name, record["ops"])
        assert "WHILE" not in record["ops"] and record["builtin_only"], (name, record["ops"])
        assert record["latency_ms_p50"] > 0 and record["num_examples"] == len(
            examples_io.load_numpy(text_examples_artifact.path, "test")["label"])
    assert variants["int8"]["output_dtype"] == "int8"
    assert variants["float32"]["agreement"] == 1.0
    # QAT cannot annotate the LSTM: skipped with the documented reason, before any data.
    assert "lstm1 (LSTM)" in variants["qat_int8"]["skipped"]

    # The float32 variant on the interpreter reproduces Keras on the same token ids.
    model_json = json.loads((text_model_artifact.path / "model.json").read_text())
    test = examples_io.load_numpy(text_examples_artifact.path, "test")
    ids = model_inputs.prepare(model_json, test["text"])
    content = (text_tflite_artifact.path / "float32.tflite").read_bytes()
    keras_model = keras.models.load_model(text_model_artifact.path / "model.keras")
    np.testing.assert_allclose(litert_measure.run(content, ids).outputs,
                               keras_model.predict(ids, verbose=0), atol=1e-4)
    with pytest.raises(ValueError, match="int32 ids"):
        litert_measure.run(content, ids.astype(np.float32))


def test_text_variant_metadata_carries_vocabulary_and_tokenizer(text_tflite_artifact,
                                                                text_model_artifact):
    from edgepipe.contracts import text_tokens

    model_json = json.loads((text_model_artifact.path / "model.json").read_text())
    for name in ("float32", "int8"):
        sidecar = json.loads((text_tflite_artifact.path / f"{name}.json").read_text())
        embedded = tflite_metadata.read_embedded(
            (text_tflite_artifact.path / f"{name}.tflite").read_bytes())
        assert embedded == sidecar
        assert sidecar["input"]["feature"] == "text" and sidecar["input"]["dtype"] == "int32"
        assert sidecar["input"]["vocabulary"] == model_json["vocabulary"]
        tokenizer = sidecar["input"]["tokenizer"]
        assert tokenizer["token_pattern"] == text_tokens.TOKEN_PATTERN
        assert (tokenizer["pad_id"], tokenizer["unknown_id"], tokenizer["length"],
                tokenizer["padding"]) == (0, 1, 24, "pre")
        assert sidecar["reset_variables_between_examples"] is True
