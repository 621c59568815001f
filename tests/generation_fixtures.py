"""Generation fixtures: the committed fortunes sample (data/fortunes/fortunes/fortunes.txt,
431 short sayings) as a corpus, plus a few characters that only the test split holds, and each
stage's artifact built from it by the real stages once per session (tiny model, one epoch)."""

from __future__ import annotations

import pathlib

import pytest

from edgepipe.components.ingest.records import assign_split

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "fortunes" / "fortunes" / "fortunes.txt"
RARE = "\u00e6\u00f8\u00e5"  # written only into documents that the hash puts in test


def corpus_config(path, **extra) -> dict:
    return {"task": "generation", "source": "text_corpus", "train": str(path),
            "test_fraction": 0.2, "validation_fraction": 0.1, **extra}


@pytest.fixture(scope="session")
def generation_corpus(tmp_path_factory) -> pathlib.Path:
    """The sample in a folder, plus one document per split, where the test one holds RARE."""
    folder = tmp_path_factory.mktemp("corpus")
    text = SAMPLE.read_text(encoding="utf-8")
    extra = {}
    for index in range(200):  # the first ids the hash sends to test and to train
        name = f"extra.txt:{index}"
        split = assign_split(name, "all", 0.1, 0.2)
        extra.setdefault(split, index)
    lines = []
    for index in range(max(extra.values()) + 1):
        lines.append((f"Only in test: {RARE}." if index == extra["test"] else "Filler.") + "\n%\n")
    (folder / "fortunes.txt").write_text(text, encoding="utf-8")
    (folder / "extra.txt").write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def generation_examples(run_stage, generation_corpus):
    properties, outputs = run_stage("ingest", {}, corpus_config(generation_corpus))
    return properties, outputs["examples"]


@pytest.fixture(scope="session")
def generation_statistics(run_stage, generation_examples):
    properties, outputs = run_stage("statistics", {"examples": generation_examples[1]},
                                    {"task": "generation", "min_token_count": 2})
    return properties, outputs


@pytest.fixture(scope="session")
def generation_model(run_stage, generation_examples, generation_statistics):
    inputs = {"examples": generation_examples[1], **generation_statistics[1]}
    properties, outputs = run_stage("train", inputs, {
        "task": "generation", "model": "char_lstm", "epochs": 2, "batch_size": 16,
        "sequence_length": 32, "learning_rate": 0.01,
        "model_options": {"embedding_dim": 8, "units": 32, "layers": 1, "dropout": 0.0}})
    return properties, outputs["model"]


@pytest.fixture(scope="session")
def generation_evaluation(run_stage, generation_examples, generation_model):
    inputs = {"examples": generation_examples[1], "model": generation_model[1]}
    properties, outputs = run_stage("evaluate", inputs, {"task": "generation",
                                                         "max_bits_per_char": 6.0})
    return properties, outputs["evaluation"]


@pytest.fixture(scope="session")
def generation_tflite(run_stage, generation_examples, generation_model):
    inputs = {"examples": generation_examples[1], "model": generation_model[1]}
    properties, outputs = run_stage("quantize", inputs, {
        "task": "generation", "variants": ["float32", "int8"],
        "representative_examples": 50, "max_scored_characters": 200,
        "max_bits_per_char_increase": 0.05})
    return properties, outputs["tflite"]


@pytest.fixture(scope="session")
def generation_report(run_stage, generation_examples, generation_statistics, generation_model,
                      generation_evaluation, generation_tflite):
    inputs = {"examples": generation_examples[1], **generation_statistics[1],
              "model": generation_model[1], "evaluation": generation_evaluation[1],
              "tflite": generation_tflite[1]}
    properties, outputs = run_stage("report", inputs, {"sample_length": 40})
    return properties, outputs["report"]
