"""Keyword-spotting fixtures: a tiny Speech Commands tree of synthetic "words" (each word a
distinct pattern of tones, said by several "speakers" at different pitches and places in the
clip), background noise, and odd or broken files; each stage's artifact built from it by the
real stages, once per test session (registered in tests/conftest.py)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from edgepipe.contracts import wav

RATE = 8000  # the tests' sample rate: small clips, the same code paths
KEYWORDS = ["yes", "no", "up"]
OTHER_WORDS = ["bed", "cat"]
SPEAKERS = [f"spk{index:02d}" for index in range(12)]
# Each word: a sequence of (frequency Hz, seconds) notes, spectrally far apart so a tiny
# model learns them in a few epochs.
NOTES = {"yes": [(400, 0.3)], "no": [(1100, 0.3)], "up": [(2600, 0.15), (2900, 0.15)],
         "bed": [(700, 0.1), (1800, 0.1)], "cat": [(3400, 0.25)]}


def say(word: str, speaker: int, take: int, rate: int = RATE) -> np.ndarray:
    """One rendition in [-1, 1], one second long."""
    rng = np.random.default_rng(speaker * 100 + take)
    pitch = 1.0 + 0.08 * (speaker % 5 - 2)
    parts = [np.sin(2 * np.pi * frequency * pitch * np.arange(int(seconds * rate)) / rate)
             for frequency, seconds in NOTES[word]]
    speech = np.concatenate(parts) * rng.uniform(0.2, 0.6)
    clip = 0.01 * rng.standard_normal(rate)
    start = int(rng.integers(0, rate - len(speech)))
    clip[start:start + len(speech)] += speech
    return np.clip(clip, -1, 1).astype(np.float32)


def pcm_wav(samples: np.ndarray, rate: int, bits: int = 16, channels: int = 1) -> bytes:
    """WAV bytes of integer PCM at `bits` (8 is unsigned) with `channels` copies."""
    frames = np.repeat(np.asarray(samples, np.float64)[:, None], channels, axis=1).ravel()
    if bits == 8:
        data = np.clip(np.round(frames * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        data = np.clip(np.round(frames * 32767), -32768, 32767).astype("<i2").tobytes()
    width = bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * width,
                          channels * width, bits) + b"data" + struct.pack("<I", len(data)) + data)


# The odd files, by name under yes/: what ingest must do with each.
ODD_FILES = {
    "odd8bit_nohash_0.wav": "kept",
    "oddstereo_nohash_0.wav": "kept",
    "odd44k_nohash_0.wav": "kept",
    "oddtruncated_nohash_0.wav": "truncated",
    "oddempty_nohash_0.wav": "empty_file",
    "oddtext_nohash_0.wav": "not_wav",
    "oddsilent_nohash_0.wav": "all_silent",
}


def write_tree(root, speakers=SPEAKERS, takes: int = 2, odd: bool = True):
    for word in KEYWORDS + OTHER_WORDS:
        (root / word).mkdir(parents=True)
        for number, name in enumerate(speakers):
            for take in range(takes if word in KEYWORDS else 1):
                (root / word / f"{name}_nohash_{take}.wav").write_bytes(
                    wav.encode(say(word, number, take), RATE))
    noise = root / "_background_noise_"
    noise.mkdir()
    rng = np.random.default_rng(0)
    (noise / "white_noise.wav").write_bytes(wav.encode(0.1 * rng.standard_normal(5 * RATE),
                                                       RATE))
    if odd:
        clip = say("yes", 1, 9)
        files = root / "yes"
        (files / "odd8bit_nohash_0.wav").write_bytes(pcm_wav(clip, RATE, bits=8))
        (files / "oddstereo_nohash_0.wav").write_bytes(pcm_wav(clip, RATE, channels=2))
        high = np.interp(np.arange(44100) / 44100, np.arange(RATE) / RATE, clip)
        (files / "odd44k_nohash_0.wav").write_bytes(pcm_wav(high, 44100))
        (files / "oddtruncated_nohash_0.wav").write_bytes(pcm_wav(clip, RATE)[:30 + 400])
        (files / "oddempty_nohash_0.wav").write_bytes(b"")
        (files / "oddtext_nohash_0.wav").write_text("this is not a recording\n")
        (files / "oddsilent_nohash_0.wav").write_bytes(pcm_wav(np.zeros(RATE), RATE))
    return root


def ingest_config(root) -> dict:
    return {"source": "audio_dir", "train": str(root), "sample_rate": RATE,
            "clip_seconds": 1.0, "keywords": KEYWORDS, "unknown_share": 0.3,
            "silence_share": 0.3, "validation_fraction": 0.15, "test_fraction": 0.2,
            "max_quarantine_fraction": 0.1}


@pytest.fixture(scope="session")
def audio_tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("speech") / "speech_commands")


@pytest.fixture(scope="session")
def audio_examples(run_stage, audio_tree):
    properties, outputs = run_stage("ingest", {}, ingest_config(audio_tree))
    return properties, outputs["examples"]


@pytest.fixture(scope="session")
def audio_statistics(run_stage, audio_examples):
    _, outputs = run_stage("statistics", {"examples": audio_examples[1]}, {})
    return outputs


TRAIN = {"model": "dscnn", "epochs": 16, "batch_size": 16, "learning_rate": 0.01,
         "augment": "audio", "augment_shift_ms": 50.0,
         "model_options": {"filters": 32, "blocks": 2, "mel_bins": 20, "window_ms": 32.0,
                           "hop_ms": 32.0, "spec_augment": True,
                           "batch_norm_momentum": 0.8}}


@pytest.fixture(scope="session")
def audio_model(run_stage, audio_examples, audio_statistics):
    properties, outputs = run_stage(
        "train", {"examples": audio_examples[1], "statistics": audio_statistics["statistics"]},
        TRAIN)
    return properties, outputs["model"]


@pytest.fixture(scope="session")
def audio_evaluation(run_stage, audio_examples, audio_model):
    inputs = {"examples": audio_examples[1], "model": audio_model[1]}
    properties, outputs = run_stage("evaluate", inputs, {
        "min_accuracy": 0.5, "stream_minutes": 0.5, "stream_threshold": 0.5})
    return properties, outputs["evaluation"]


@pytest.fixture(scope="session")
def audio_tflite(run_stage, audio_examples, audio_model):
    inputs = {"examples": audio_examples[1], "model": audio_model[1]}
    properties, outputs = run_stage("quantize", inputs, {
        "variants": ["float32"], "int8_io": "float32",
        "representative_examples": 50, "benchmark_tool": False})
    return properties, outputs["tflite"]


@pytest.fixture(scope="session")
def audio_registry(run_stage, audio_examples, audio_model, audio_evaluation, audio_tflite,
                   tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio_registry")
    inputs = {"examples": audio_examples[1], "model": audio_model[1],
              "evaluation": audio_evaluation[1], "tflite": audio_tflite[1]}
    properties, _ = run_stage("push", inputs, {"registry": {"path": str(folder),
                                                            "model_name": "keywords"}})
    assert properties["pushed"], properties
    return folder
