"""Fine-tuning optimisations: quantization-aware training and magnitude pruning with tfmot."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from edgepipe.components.quantize import measure as litert_measure, qat
from edgepipe.components.shared import input_pipeline

LOG = logging.getLogger("test")


def fine_tune_data(examples, model_json: dict, batch_size: int, seed: int):
    """The train split as the quantize stage fine-tunes on it: shuffled whole, seeded."""
    import tensorflow as tf

    return input_pipeline.dataset(tf, examples, "train", model_json, batch_size, seed=seed,
                                  shuffle_buffer=10_000)


def records_of(artifact) -> dict[str, dict]:
    return {record["name"]: record
            for record in json.loads((artifact.path / "variants.json").read_text())}


def test_qat_on_the_cnn_converts_to_full_int8_and_runs(tflite_artifact, examples_artifact):
    from ai_edge_litert.interpreter import Interpreter

    from edgepipe.components.shared import examples_io

    record = records_of(tflite_artifact)["qat_int8"]
    path = tflite_artifact.path / "qat_int8.tflite"
    interpreter = Interpreter(model_path=str(path))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert record["builtin_only"] and "CONV_2D" in record["ops"]
    assert record["size_bytes"] <= 0.30 * records_of(tflite_artifact)["float32"]["size_bytes"]
    test = examples_io.load_numpy(examples_artifact.path, "test")
    run = litert_measure.run(path.read_bytes(), test["image"][:50].astype(np.float32), warmup=0)
    accuracy = float(np.mean(np.argmax(run.outputs, axis=1) == test["label"][:50]))
    assert accuracy >= 0.3  # 10 classes: far above chance after 2 epochs on 240 images
    assert record["accuracy"] >= 0.3


def test_qat_fake_quantizes_every_layer_but_the_raw_input_normalisation(
    model_artifact, examples_artifact
):
    from edgepipe.models.keras import keras

    model = keras.models.load_model(model_artifact.path / "model.keras")
    model_json = json.loads((model_artifact.path / "model.json").read_text())
    data = fine_tune_data(examples_artifact.path, model_json, 64, 1).take(2)
    before = [weight.copy() for weight in model.get_weights()]
    qat_model = qat.quantization_aware(model, data, epochs=1, learning_rate=1e-4, log=LOG)
    names = [layer.name for layer in qat_model.layers]
    assert names[:2] == ["image", "normalize"]
    assert all(name.startswith("quant_") for name in names[2:])
    # Fine-tuning trains a copy: the trained model is left as it was.
    assert all(np.array_equal(old, new) for old, new in zip(before, model.get_weights()))


def test_fine_tuning_data_is_the_whole_train_split_in_seeded_order(
    model_artifact, examples_artifact
):
    from edgepipe.components.shared import examples_io

    model_json = json.loads((model_artifact.path / "model.json").read_text())

    def labels(seed):
        data = fine_tune_data(examples_artifact.path, model_json, 50, seed)
        batches = list(data.as_numpy_iterator())
        assert batches[0][0].dtype == np.float32 and batches[0][0].shape[1:] == (28, 28, 1)
        return np.concatenate([batch_labels for _, batch_labels in batches])

    first = labels(3)
    assert len(first) == examples_io.split_size(examples_artifact.path, "train")
    assert np.array_equal(first, labels(3)) and not np.array_equal(first, labels(4))


def test_qat_refuses_an_lstm_before_training_with_the_documented_message():
    from edgepipe.models import lstm

    model = lstm.build((29, 12), 9, np.zeros(12), np.ones(12), units=(8,))
    with pytest.raises(qat.QatUnsupported) as raised:
        qat.quantization_aware(model, None, epochs=1, learning_rate=1e-4, log=LOG)
    assert str(raised.value) == qat.QAT_UNSUPPORTED.format(layers="lstm1 (LSTM)")
    assert "post-training 'int8' variant" in str(raised.value)


def test_pruning_reaches_the_target_sparsity_and_compresses(
    run_stage, examples_artifact, model_artifact, tflite_artifact
):
    inputs = {"examples": examples_artifact, "model": model_artifact}
    # The tiny fixture model loses accuracy when pruned: accept any drop, deploying it anyway.
    config = {"variants": ["pruned_int8"], "pruning_sparsity": 0.6, "pruning_epochs": 1,
              "representative_examples": 50, "max_test_examples": 20,
              "max_accuracy_drop_points": 100.0, "benchmark_tool": False}
    _, artifacts = run_stage("quantize", inputs, config)
    pruned = records_of(artifacts["tflite"])["pruned_int8"]
    int8 = records_of(tflite_artifact)["int8"]
    assert pruned["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert pruned["input_dtype"] == "int8" and pruned["builtin_only"]
    # Zeros cost bytes in the flatbuffer but compress: the gzip size shows the saving.
    assert pruned["size_bytes"] == pytest.approx(int8["size_bytes"], rel=0.02)
    assert pruned["gzip_size_bytes"] < 0.8 * int8["gzip_size_bytes"]


def test_qat_folds_batch_norm_into_its_conv_and_converts_to_int8(model_artifact,
                                                                 examples_artifact):
    """cnn_bn (conv -> batch norm -> ReLU blocks) trains quantization-aware and converts to a
    full-int8 model whose batch norms are folded into the convolutions."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from edgepipe.models import cnn_bn

    model = cnn_bn.build((28, 28, 1), 10, 72.9, 8100.0, filters=(4, 8), dense_units=16)
    assert qat.unannotatable_layers(model) == []
    model_json = json.loads((model_artifact.path / "model.json").read_text())
    data = fine_tune_data(examples_artifact.path, model_json, 32, 1).take(2)
    qat_model = qat.quantization_aware(model, data, epochs=1, learning_rate=1e-3, log=LOG)
    converter = tf.lite.TFLiteConverter.from_keras_model(qat_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([images] for images, _ in data.unbatch()
                                                .batch(1).take(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    interpreter = Interpreter(model_content=converter.convert())
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert ops.count("CONV_2D") == 4 and "FULLY_CONNECTED" in ops
    assert "MUL" not in ops and "ADD" not in ops  # no batch norm left as arithmetic


def test_folding_batch_norms_keeps_the_function_and_drops_the_layers(examples_artifact):
    from edgepipe.components.shared import examples_io
    from edgepipe.models import cnn_bn

    model = cnn_bn.build((28, 28, 1), 10, 72.9, 8100.0, filters=(4, 8), dense_units=16)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking statistics, not the initial 0/1
        if type(layer).__name__ == "BatchNormalization":
            size = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, size), rng.normal(0, 1, size),
                               rng.normal(0, 1, size), rng.uniform(0.5, 2, size)])
    folded = qat.fold_batch_norms(model)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert "BatchNormalization" not in kinds and kinds.count("Conv2D") == 4
    assert folded.count_params() < model.count_params()
    images = examples_io.load_numpy(examples_artifact.path, "test")["image"][:32]
    np.testing.assert_allclose(folded.predict(images.astype(np.float32), verbose=0),
                               model.predict(images.astype(np.float32), verbose=0),
                               atol=1e-5)


def test_qat_refuses_a_batch_norm_that_follows_no_conv():
    from edgepipe.models.keras import keras

    inputs = keras.Input((8,), name="features")
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.BatchNormalization(name="lonely_bn")(inputs))
    with pytest.raises(qat.QatUnsupported, match=r"lonely_bn \(BatchNormalization\)"):
        qat.quantization_aware(keras.Model(inputs, outputs), None, epochs=1,
                               learning_rate=1e-4, log=LOG)
