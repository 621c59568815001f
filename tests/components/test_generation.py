"""Text generation through the real stages on a tiny corpus and a tiny model."""

from __future__ import annotations

import json

import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, characters

from tests.generation_fixtures import RARE


def test_corpus_documents_split_whole_and_characters_only_in_test_are_unknown(
        generation_examples, generation_statistics):
    properties, examples = generation_examples
    assert properties["units"] == "chars" and properties["input_feature"] == "text"
    ids = {split: examples_io.load_texts(examples.path, split)[0]
           for split in ("train", "validation", "test")}
    assert all(ids.values()) and not set(ids["train"]) & set(ids["test"])
    assert sum(map(len, ids.values())) == sum(properties["splits"].values())
    statistics, outputs = generation_statistics
    vocabulary = characters.read(outputs["statistics"].path / characters.FILE)
    assert not set(RARE) & set(vocabulary["tokens"])  # seen only in test: [UNK]
    summary = artifacts.read_statistics(outputs["statistics"].path)["splits"]
    assert all(char in summary["test"]["unknown_top"] for char in RARE)
    schema = (outputs["schema"].path / "schema.pbtxt").read_text()
    assert 'name: "characters"' in schema and 'value: "e"' in schema


def test_training_and_evaluate_report_bits_per_character(generation_model,
                                                         generation_evaluation):
    properties, model = generation_model
    assert properties["final"]["bits_per_char"] < 5.0
    info = artifacts.read_model_info(model.path)
    assert info["state_shape"] == [1, 32] and info["task"] == "generation"
    evaluation_properties, evaluation = generation_evaluation
    metrics = artifacts.read_metrics(evaluation.path)
    for split in ("validation", "test"):
        bits = metrics["splits"][split]["bits_per_char"]
        assert 0 < bits < 6.0
        assert metrics["splits"][split]["perplexity"] == pytest.approx(2 ** bits)
    assert metrics["unknown_characters"] >= len(RARE)
    assert evaluation_properties["blessed"], evaluation_properties["reason"]
    surprising = artifacts.read_singled_out(evaluation.path)["surprising_characters"]
    assert surprising[0]["bits"] >= surprising[-1]["bits"] > 0


def test_step_signature_converts_to_builtins_and_each_variant_is_scored(generation_tflite):
    properties, tflite = generation_tflite
    records = {record["name"]: record for record in artifacts.read_variants(tflite.path)}
    assert "float32" in records and "skipped" not in records["float32"]
    for record in records.values():
        if "skipped" in record:  # a variant that failed says why
            assert record["skipped"].startswith("failed")
            continue
        assert record["builtin_only"], record["ops"]
        assert not any(op.startswith("Flex") or op == "WHILE" for op in record["ops"])
        assert record["scored_characters"] >= 200
    # float32 computes what Keras computes
    assert abs(records["float32"]["bits_per_char_difference"]) < 1e-3
    assert records["float32"]["agreement"] > 0.99
    deployable = artifacts.read_deployable(tflite.path)
    chosen = records[deployable["variant"]]
    assert chosen["bits_per_char_difference"] <= 0.05 + 1e-9
    assert chosen["size_bytes"] == min(record["size_bytes"] for record in records.values()
                                       if "skipped" not in record
                                       and record["bits_per_char_difference"] <= 0.05 + 1e-9)


def test_report_shows_curves_samples_and_surprising_characters(generation_report):
    properties, report = generation_report
    html = (report.path / "report.html").read_text()
    assert "bits per character" in html and "data:image/png;base64," in html
    summary = json.loads((report.path / "summary.json").read_text())
    assert [sample["temperature"] for sample in summary["samples"][:3]] == [0.5, 0.8, 1.0]
    assert all(len(sample["text"]) >= 1 for sample in summary["samples"])
    assert 'id="surprising"' in html and "<mark>" in html
    assert summary["deployable_variant"]["variant"] == properties["deployable_variant"]


def test_greedy_generation_through_litert_equals_greedy_through_keras(generation_model,
                                                                      generation_tflite):
    import numpy as np

    from edgepipe.contracts.litert_step import Generator
    from edgepipe.models.keras import keras

    _, model_dir = generation_model
    _, tflite = generation_tflite
    generator = Generator(tflite.path / "float32.tflite", model_dir.path / characters.FILE)
    prompt = "A man "
    litert_text = generator.generate(prompt, 25, 0.0, seed=0)["text"]
    model = keras.models.load_model(model_dir.path / "model.keras", compile=False)
    ids = [characters.START_ID, *characters.encode(prompt, generator.index)]
    generated = []
    for _ in range(25):  # the whole sequence through the Keras model at every step
        logits = model(np.asarray([ids], np.int32), training=False).numpy()[0, -1]
        chosen = characters.choose(logits, 0.0, np.random.default_rng(0))
        generated.append(chosen)
        ids.append(chosen)
    assert litert_text == characters.decode(generated, generator.tokens, generator.units)


def test_an_empty_corpus_is_a_clear_error(run_stage, tmp_path):
    from tests.generation_fixtures import corpus_config

    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(ValueError, match="no files in the corpus"):
        run_stage("ingest", {}, corpus_config(empty))
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "empty.txt").write_text("\n%\n   \n%\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"2 of 2 records .* empty_text"):
        run_stage("ingest", {}, corpus_config(blank))


def test_training_windows_start_anywhere_in_the_stream_and_repeat_with_the_seed():
    import numpy as np
    import tensorflow as tf

    from edgepipe.components.train import generation

    stream = np.arange(50, dtype=np.int32)  # each id its own position: a window shows its start
    def draws(seed):
        batches = generation.random_windows(tf, stream, 9, 4, seed).take(5)
        return [(inputs.numpy(), targets.numpy()) for inputs, targets in batches]

    first = draws(42)
    starts = set()
    for inputs, targets in first:
        assert inputs.shape == targets.shape == (4, 9)
        np.testing.assert_array_equal(targets, inputs + 1)  # the next id of a contiguous piece
        np.testing.assert_array_equal(inputs, inputs[:, :1] + np.arange(9))
        assert ((inputs[:, 0] >= 0) & (inputs[:, 0] <= 50 - 10)).all()
        starts |= set(inputs[:, 0].tolist())
    assert len(starts) > 5  # not the 5 fixed cuts of 9 + 1 ids: new windows every batch
    again = draws(42)
    assert all((a[0] == b[0]).all() for a, b in zip(first, again))
    assert any((a[0] != b[0]).any() for a, b in zip(first, draws(43)))
    with pytest.raises(ValueError, match="sequence_length"):
        generation.random_windows(tf, stream[:5], 9, 4, 42)
