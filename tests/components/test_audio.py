"""Keyword spotting on raw audio through the real stages: the audio_dir source (odd and
broken files included), audio statistics, the front end inside the model and its TFLite
conversion, and a tiny end-to-end run (tests/audio_fixtures.py)."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, wav

from tests.audio_fixtures import KEYWORDS, ODD_FILES, OTHER_WORDS, RATE


def test_odd_files_are_converted_and_broken_ones_quarantined_naming_the_file(audio_examples):
    properties, examples = audio_examples
    rejected = {record["id"].split("/")[-1]: record
                for record in artifacts.read_quarantine(examples.path)}
    expected = {name: reason for name, reason in ODD_FILES.items() if reason != "kept"}
    assert {name: record["reason"] for name, record in rejected.items()} == expected
    for name, record in rejected.items():
        assert name in record["detail"]  # the reason names the file
    assert "cut short" in rejected["oddtruncated_nohash_0.wav"]["detail"]
    ids = set()
    for split in ("train", "validation", "test"):
        ids |= set(examples_io.load_numpy(examples.path, split)["id"])
    kept = {f"yes/{name}" for name, reason in ODD_FILES.items() if reason == "kept"}
    assert kept <= ids  # 8-bit, stereo and 44.1 kHz files were converted, not refused


def test_clips_are_resampled_fitted_and_speakers_stay_in_one_split(audio_examples):
    properties, examples = audio_examples
    assert properties["class_names"] == KEYWORDS + ["unknown", "silence"]
    assert examples_io.sample_rate(examples.path) == RATE
    speakers = collections.defaultdict(set)
    counts = {}
    for split in ("train", "validation", "test"):
        data = examples_io.load_numpy(examples.path, split)
        assert data["audio"].shape[1:] == (RATE,) and data["audio"].dtype == np.float32
        assert np.abs(data["audio"]).max() <= 1.0
        counts[split] = collections.Counter(data["label"].tolist())
        for record_id in data["id"]:
            if not record_id.startswith("silence/"):
                speakers[record_id.split("/")[1].split("_nohash_")[0]].add(split)
    assert all(len(splits) == 1 for splits in speakers.values()), speakers
    unknown, silence = len(KEYWORDS), len(KEYWORDS) + 1
    train_keywords = sum(counts["train"][label] for label in range(len(KEYWORDS)))
    # the shares are of the keyword files each split was given, quarantined ones included
    broken = sum(reason != "kept" for reason in ODD_FILES.values())
    assert round(0.3 * train_keywords) <= counts["train"][silence] <= round(
        0.3 * (train_keywords + broken))
    train_speakers = sum(splits == {"train"} for name, splits in speakers.items()
                         if name.startswith("spk"))
    # every unknown clip there is, up to the share
    assert min(round(0.3 * train_keywords), len(OTHER_WORDS) * train_speakers) <= \
        counts["train"][unknown] <= min(round(0.3 * (train_keywords + broken)),
                                        len(OTHER_WORDS) * train_speakers)


def test_the_44k_stereo_and_8bit_files_decode_to_the_same_clip(audio_tree):
    reference, _ = wav.decode((audio_tree / "yes" / "spk01_nohash_0.wav").read_bytes())
    for name in ("odd8bit_nohash_0.wav", "oddstereo_nohash_0.wav", "odd44k_nohash_0.wav"):
        samples, rate = wav.decode((audio_tree / "yes" / name).read_bytes())
        samples = wav.resample(samples, rate, RATE)
        assert samples.shape == (RATE,)
    eight, _ = wav.decode((audio_tree / "yes" / "odd8bit_nohash_0.wav").read_bytes())
    stereo, _ = wav.decode((audio_tree / "yes" / "oddstereo_nohash_0.wav").read_bytes())
    assert np.abs(eight - stereo).max() < 0.01  # 8-bit: within its own quantisation step


def test_audio_statistics_per_class_and_the_schema_bounds_the_samples(audio_statistics):
    statistics = artifacts.read_statistics(audio_statistics["statistics"].path)
    audio = statistics["splits"]["train"]["features"]["audio"]
    assert audio["sample_rate"] == RATE and audio["clip_samples"] == RATE
    per_class = audio["per_class"]
    assert set(per_class) == set(KEYWORDS + ["unknown", "silence"])
    assert -40 < per_class["yes"]["median_level_dbfs"] < -3
    # the words last 0.2-0.3 s inside their second
    assert 0.1 < per_class["up"]["median_active_seconds"] < 0.6
    schema = (audio_statistics["schema"].path / "schema.pbtxt").read_text()
    assert 'name: "audio"' in schema and "float_domain" in schema


def test_the_front_end_converts_to_builtin_ops_and_matches_keras():
    """LogMel alone: TFLite float32 with builtin ops only (no RFFT2D, no Flex), the same
    spectrogram as Keras, and the same as tf.signal's log-mel of the same frames."""
    import tensorflow as tf

    from ai_edge_litert.interpreter import Interpreter

    from edgepipe.components.quantize.measure import op_names
    from edgepipe.contracts import litert
    from edgepipe.models import audio_frontend
    from edgepipe.models.keras import keras

    inputs = keras.Input(shape=(RATE,), name="audio")
    layer = audio_frontend.LogMel(RATE, window_ms=32.0, hop_ms=16.0, mel_bins=20,
                                  upper_hz=RATE / 2)
    model = keras.Model(inputs, layer(inputs))
    clip = np.random.default_rng(0).uniform(-0.5, 0.5, (1, RATE)).astype(np.float32)
    expected = model(clip).numpy()
    function = tf.function(lambda x: model(x)).get_concrete_function(
        tf.TensorSpec((1, RATE), tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    content = converter.convert()
    ops = op_names(content)
    assert "RFFT2D" not in ops and not any(op.startswith("Flex") for op in ops), ops
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    got = litert.invoke_each(interpreter, clip)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    stft = tf.signal.stft(clip, 256, 128, fft_length=256, window_fn=tf.signal.hann_window,
                          pad_end=False)
    mel = tf.signal.linear_to_mel_weight_matrix(20, 129, RATE, 20.0, RATE / 2)
    reference = np.log(np.square(np.abs(stft.numpy())) @ mel.numpy() + audio_frontend.LOG_FLOOR)
    assert expected.shape == reference.shape
    # the same spectrogram up to the window's periodic/symmetric form
    assert np.median(np.abs(expected - reference)) < 0.2


def test_the_dscnn_learns_the_words_from_raw_samples(audio_examples, audio_model):
    from edgepipe.contracts import model_inputs
    from edgepipe.models.keras import keras

    properties, model_dir = audio_model
    info = artifacts.read_model_info(model_dir.path)
    assert info["input_feature"] == "audio" and info["sample_rate"] == RATE
    model = keras.models.load_model(model_dir.path / "model.keras")  # custom layers load
    assert model.count_params() < 100_000
    test = examples_io.load_numpy(audio_examples[1].path, "test")
    probabilities = model.predict(model_inputs.prepare(info, test["audio"]), verbose=0)
    accuracy = float((probabilities.argmax(1) == test["label"]).mean())
    assert accuracy >= 0.7, accuracy  # 5 classes: chance is 0.2-0.3 (0.8-1.0 seen, by test order)


@pytest.mark.slow  # int8 conversion through the quantization debugger: ~30 s here
def test_int8_keeps_the_front_end_float_and_carries_the_audio_metadata(run_stage,
                                                                       audio_examples,
                                                                       audio_model):
    from edgepipe.components.quantize.measure import op_names
    from edgepipe.components.tflite_metadata import flatbuffer

    inputs = {"examples": audio_examples[1], "model": audio_model[1]}
    _, outputs = run_stage("quantize", inputs, {
        "variants": ["int8"], "int8_io": "float32", "representative_examples": 50,
        "benchmark_tool": False})
    tflite = outputs["tflite"]
    variants = {record["name"]: record for record in artifacts.read_variants(tflite.path)}
    int8 = variants["int8"]
    assert not [op for op in int8["ops"] if op.startswith("Flex") or op == "RFFT2D"]
    assert int8["agreement"] >= 0.9  # with the Keras model, on the test clips
    content = (tflite.path / "int8.tflite").read_bytes()
    assert "CONV_2D" in op_names(content) and "QUANTIZE" in op_names(content)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    assert interpreter.get_input_details()[0]["dtype"] == np.float32  # MediaPipe needs float
    assert interpreter.get_output_details()[0]["dtype"] == np.float32  # int8 is refused there
    metadata, files = flatbuffer.read(content)
    tensor = metadata.subgraphMetadata[0].inputTensorMetadata[0]
    audio = tensor.content.contentProperties
    assert (audio.sampleRate, audio.channels) == (RATE, 1)
    labels = metadata.subgraphMetadata[0].outputTensorMetadata[0].associatedFiles[0]
    assert labels.type == 2  # TENSOR_AXIS_LABELS
    assert files[flatbuffer.text(labels.name)].decode().split() == KEYWORDS + ["unknown",
                                                                              "silence"]


def test_the_lstm_builder_reads_the_spectrogram_of_raw_samples():
    from edgepipe import models

    model = models.build("lstm", input_shape=(RATE,), num_classes=5, sample_rate=RATE,
                         units=(8,), window_ms=32.0, hop_ms=32.0, mel_bins=12)
    assert model.input_shape == (None, RATE) and model.output_shape == (None, 5)
    assert model.get_layer("frames").output_shape == (None, 31, 12)  # frames x mel bands
    probabilities = model(np.zeros((2, RATE), np.float32)).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
