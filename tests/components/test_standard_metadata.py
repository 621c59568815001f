"""The standard TFLite metadata of every variant, read back by maintained readers.

tflite-support 0.4.4's C++ MetadataDisplayer and its TFLite Task Library (ImageClassifier,
NLClassifier) run in a venv of their own (metadata_readers.py), without TensorFlow and without
edgepipe's writer: they read the labels, the normalisation, the tokenizer and the packed files
of an image, a sequence and a text model, and the Task Library classifies with the files as
they are. The heavier MediaPipe Tasks check is benchmarks/mediapipe_check.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepipe.components import tflite_metadata
from edgepipe.components.quantize import device_checks, measure, metadata
from edgepipe.components.shared import examples_io
from edgepipe.contracts import model_inputs, text_tokens
from tests.components import metadata_readers
from tests.conftest import CLASS_NAMES


@pytest.fixture(scope="module")
def rgb_tflite(run_stage, examples_artifact, statistics_artifacts):
    """A CNN trained on the gray sample that takes RGB ([train] input_color = "rgb")."""
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    _, trained = run_stage("train", inputs, {"epochs": 1, "batch_size": 32, "input_color": "rgb"})
    _, converted = run_stage("quantize", {"examples": examples_artifact, "model": trained["model"]},
                             {"variants": ["float32", "uint8"], "representative_examples": 50,
                              "max_test_examples": 20, "metadata_name": "rgb test model",
                              "metadata_license": "Apache-2.0", "benchmark_tool": False})
    return trained["model"], converted["tflite"]


def _rgb_test_images(examples_artifact, count: int) -> np.ndarray:
    gray = examples_io.load_numpy(examples_artifact.path, "test")["image"][:count]
    return np.repeat(gray, 3, axis=-1)


def _texts(text_examples_artifact, count: int) -> list[str]:
    return [str(text).lower() for text in
            examples_io.load_numpy(text_examples_artifact.path, "test")["text"][:count]]


@pytest.fixture(scope="module")
def readings(tflite_artifact, rgb_tflite, vowels_tflite, text_tflite_artifact,
             examples_artifact, text_examples_artifact) -> dict[str, dict]:
    """What tflite-support reads (and classifies) in each model, by a short name."""
    images = _rgb_test_images(examples_artifact, 8).tolist()
    texts = _texts(text_examples_artifact, 12)
    jobs = {
        "gray_float32": {"path": str(tflite_artifact.path / "float32.tflite")},
        "gray_uint8": {"path": str(tflite_artifact.path / "uint8.tflite")},
        "gray_int8": {"path": str(tflite_artifact.path / "int8.tflite")},
        "rgb_float32": {"path": str(rgb_tflite[1].path / "float32.tflite"), "images": images},
        "rgb_uint8": {"path": str(rgb_tflite[1].path / "uint8.tflite"), "images": images},
        "sequence_float32": {"path": str(vowels_tflite[1].path / "float32.tflite")},
        "sequence_int8": {"path": str(vowels_tflite[1].path / "int8.tflite")},
        "text_float32": {"path": str(text_tflite_artifact.path / "float32.tflite"),
                         "texts": texts},
        "text_int8": {"path": str(text_tflite_artifact.path / "int8.tflite")},
    }
    return dict(zip(jobs, metadata_readers.read(list(jobs.values()))))


def _tensors(reading: dict) -> tuple[dict, dict]:
    graph = reading["metadata"]["subgraph_metadata"][0]
    return graph["input_tensor_metadata"][0], graph["output_tensor_metadata"][0]


def _unit(tensor: dict, kind: str) -> dict:
    (unit,) = [unit["options"] for unit in tensor.get("process_units", [])
               if unit["options_type"] == kind]
    return unit


def test_image_metadata_has_labels_colour_space_and_normalisation(readings):
    for name in ("gray_float32", "gray_uint8", "gray_int8", "rgb_float32", "rgb_uint8"):
        reading = readings[name]
        document = reading["metadata"]
        assert document["min_parser_version"] == "1.0.0", name
        assert document["version"].startswith("model ")  # the Model artifact's key
        image, output = _tensors(reading)
        colour = "RGB" if name.startswith("rgb") else "GRAYSCALE"
        assert image["content"]["content_properties"]["color_space"] == colour, name
        # The model normalises inside: tools feed raw pixels (mean 0, std 1).
        assert _unit(image, "NormalizationOptions") == {"mean": [0.0], "std": [1.0]}
        assert output["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
        assert reading["packed"] == ["labels.txt"]
        assert reading["files"]["labels.txt"].splitlines() == list(CLASS_NAMES)
    assert readings["gray_float32"]["metadata"]["name"] == "cnn image classifier"
    assert readings["rgb_float32"]["metadata"]["name"] == "rgb test model"
    assert readings["rgb_float32"]["metadata"]["license"] == "Apache-2.0"
    assert _tensors(readings["gray_float32"])[0]["stats"] == {"max": [255.0], "min": [0.0]}
    assert "uint8, quantized" in _tensors(readings["gray_uint8"])[0]["description"]
    assert "RGB to one gray channel" in _tensors(readings["rgb_uint8"])[0]["description"]


def test_task_library_classifies_rgb_images_like_litert(readings, rgb_tflite, examples_artifact):
    """The TFLite Task Library's ImageClassifier, from the metadata alone, gives LiteRT's
    scores and the right class names on RGB images (gray test images as RGB)."""
    images = _rgb_test_images(examples_artifact, 8)
    for variant, tolerance in (("float32", 1e-5), ("uint8", 1.0 / 256 + 1e-6)):
        content = (rgb_tflite[1].path / f"{variant}.tflite").read_bytes()
        expected = measure.run(content, images.astype(np.float32), warmup=0).outputs
        for scores, categories in zip(expected, readings[f"rgb_{variant}"]["images"]):
            got = np.zeros(len(CLASS_NAMES))
            for index, name, score in categories:
                assert name == CLASS_NAMES[index]
                got[index] = score
            np.testing.assert_allclose(got, scores, atol=tolerance)
            assert categories[0][0] == int(np.argmax(scores))


def test_sequence_metadata_states_steps_channels_and_range(readings, vowels_tflite):
    for name in ("sequence_float32", "sequence_int8"):
        reading = readings[name]
        sequence, output = _tensors(reading)
        assert sequence["content"]["content_properties_type"] == "FeatureProperties"
        assert "steps x 12 channels" in sequence["description"]
        assert "pre-padded" in sequence["description"]
        assert "process_units" not in sequence  # normalised inside the model
        low, high = sequence["stats"]["min"][0], sequence["stats"]["max"][0]
        assert low < 0 < high
        assert reading["files"]["labels.txt"].splitlines() == [str(k) for k in range(1, 10)]
    assert "int8, quantized" in _tensors(readings["sequence_int8"])[0]["description"]


def test_text_metadata_carries_the_tokenizer_and_vocabulary(readings, text_model_artifact):
    vocabulary = json.loads((text_model_artifact.path / "model.json").read_text())["vocabulary"]
    for name in ("text_float32", "text_int8"):
        reading = readings[name]
        assert reading["metadata"]["min_parser_version"] == "1.2.1"  # RegexTokenizer
        text, output = _tensors(reading)
        tokenizer = _unit(text, "RegexTokenizerOptions")
        assert tokenizer["delim_regex_pattern"] == tflite_metadata.description.DELIM_REGEX
        assert tokenizer["vocab_file"][0]["name"] == "vocab.txt"
        assert tokenizer["vocab_file"][0]["type"] == "VOCABULARY"
        assert reading["packed"] == ["labels.txt", "vocab.txt"]
        lines = reading["files"]["vocab.txt"].splitlines()
        assert lines[:2] == ["<PAD> 0", "<UNKNOWN> 1"]
        assert lines[2:] == [f"{token} {index}" for index, token in enumerate(vocabulary)][2:]
        assert "LOWERCASED" in text["description"] and "reset it" in text["description"]
        assert reading["files"]["labels.txt"].splitlines() == ["fortunes", "literature",
                                                               "riddles"]


def test_task_library_tokenizes_and_classifies_texts_like_litert(
        readings, text_tflite_artifact, text_model_artifact, text_examples_artifact):
    """The Task Library's NLClassifier tokenizes with the metadata's regex and vocabulary;
    it pads after the tokens, so LiteRT is fed the same "post" padding here."""
    model_json = json.loads((text_model_artifact.path / "model.json").read_text())
    texts = _texts(text_examples_artifact, 12)
    ids = text_tokens.encode(texts, model_json["vocabulary"], model_json["input_shape"][0], "post")
    content = (text_tflite_artifact.path / "float32.tflite").read_bytes()
    expected = measure.run(content, ids, warmup=0).outputs
    for scores, categories in zip(expected, readings["text_float32"]["texts"]):
        got = {name: score for _, name, score in categories}
        np.testing.assert_allclose([got[name] for name in ("fortunes", "literature", "riddles")],
                                   scores, atol=1e-5)


def test_the_json_entry_and_the_sidecar_survive_beside_the_standard_metadata(tflite_artifact):
    content = (tflite_artifact.path / "uint8.tflite").read_bytes()
    sidecar = json.loads((tflite_artifact.path / "uint8.json").read_text())
    assert metadata.read_embedded(content) == sidecar
    assert (sidecar["input"]["dtype"], sidecar["output"]["dtype"]) == ("uint8", "uint8")
    standard, files = tflite_metadata.read(content)
    assert standard is not None and set(files) == {"labels.txt"}


def test_device_checks_are_recorded_per_variant(tflite_artifact, vowels_tflite):
    records = {record["name"]: record for record in
               json.loads((tflite_artifact.path / "variants.json").read_text())}
    for name, record in records.items():
        device = record["device"]
        assert device["xnnpack"]["delegated"] <= device["xnnpack"]["ops"], name
        assert device["nnapi"]["compatible"] is None and device["coreml"]["compatible"] is None
        assert "per-op parameter rules not checked" in device["gpu"]["check"]
    assert records["float32"]["device"]["xnnpack"]["fully"] is True
    assert records["float32"]["device"]["gpu"]["compatible"] is True
    # MediaPipe takes float32 and uint8 input/output, not int8, and only RGB images.
    assert not records["uint8"]["device"]["mediapipe"]["compatible"]  # gray: 1 channel
    assert any("int8" in problem for problem in records["int8"]["device"]["mediapipe"]["problems"])
    assert records["float32"]["device"]["benchmark"]["ran"] is True
    assert records["float32"]["device"]["benchmark"]["median_ms"] >= 0
    lstm = {record["name"]: record for record in
            json.loads((vowels_tflite[1].path / "variants.json").read_text())}["float32"]
    assert lstm["device"]["gpu"]["unsupported_ops"] == ["UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lstm["device"]["xnnpack"]["not_delegated"]
    assert lstm["device"]["benchmark"]["ran"] is False and lstm["device"]["benchmark"]["error"]


def test_rgb_variants_are_what_mediapipe_takes(rgb_tflite):
    records = {record["name"]: record for record in
               json.loads((rgb_tflite[1].path / "variants.json").read_text())}
    assert records["uint8"]["device"]["mediapipe"] == {"compatible": True, "problems": []}
    assert records["float32"]["device"]["mediapipe"]["compatible"] is True
    assert (records["uint8"]["input_dtype"], records["uint8"]["output_dtype"]) == ("uint8",
                                                                                   "uint8")


def test_rgb_model_reads_gray_examples_as_rgb(rgb_tflite, examples_artifact):
    from edgepipe.models.keras import keras

    model_dir, _ = rgb_tflite
    model_json = json.loads((model_dir.path / "model.json").read_text())
    assert model_json["input_shape"] == [28, 28, 3] and model_json["rgb_to_gray"] is True
    gray = examples_io.load_numpy(examples_artifact.path, "test")["image"][:4]
    batch = model_inputs.prepare(model_json, gray)
    assert batch.shape == (4, 28, 28, 3)
    model = keras.models.load_model(model_dir.path / "model.keras")
    assert model.get_layer("rgb_to_gray").trainable is False
    # Gray pixels repeated into RGB give back the gray image inside the model.
    converted = keras.Model(model.inputs, model.get_layer("rgb_to_gray").output)(batch).numpy()
    np.testing.assert_allclose(converted, gray.astype(np.float32), atol=1e-3)


def test_gpu_op_list_and_xnnpack_coverage_on_a_known_model(tflite_artifact):
    coverage = device_checks.xnnpack_coverage((tflite_artifact.path / "float32.tflite").read_bytes())
    assert coverage["ops"] >= 1 and coverage["delegated"] <= coverage["ops"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in device_checks.GPU_DELEGATE_OPS
    assert {"CONV_2D", "SOFTMAX", "FULLY_CONNECTED"} <= device_checks.GPU_DELEGATE_OPS
