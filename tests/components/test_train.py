"""The train stage on tiny real samples: layout, export, learning, divergence, a real
kill-and-resume, and the sequence path (JapaneseVowels) end to end through the stage."""

from __future__ import annotations

import json
import logging
import math
import pathlib
import re
import signal
import time

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import model_inputs
from edgepipe.components.shared import input_spec
from edgepipe.pipeline.stage import Context, Runtime
from tests.components import train_kill
from tests.conftest import CLASS_NAMES, REPO


def test_model_artifact_has_documented_layout(model_artifact):
    path = model_artifact.path
    for name in ("model.keras", "model.json", "history.json", "saved_model/saved_model.pb"):
        assert (path / name).is_file(), f"missing {name}"
    assert list((path / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((path / "logs" / "validation").glob("events.out.tfevents.*"))

    info = json.loads((path / "model.json").read_text())
    assert info["model"] == "cnn"
    assert info["input_shape"] == [28, 28, 1]
    assert info["input_dtype"] == "uint8"
    assert info["class_names"] == list(CLASS_NAMES)
    assert info["params"] == 421_642
    assert info["epochs"] == 2
    assert info["replicas"] == 1

    properties = model_artifact.properties
    assert properties["params"] == 421_642
    assert properties["resumed_from_epoch"] is None  # it did not resume
    assert set(properties["final"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_history_has_one_entry_per_epoch_and_loss_falls(model_artifact):
    history = json.loads((model_artifact.path / "history.json").read_text())
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for metric, values in history.items():
        assert len(values) == 2, metric
        assert all(math.isfinite(value) for value in values), metric
    assert history["loss"][1] < history["loss"][0]
    assert model_artifact.properties["final"]["loss"] == pytest.approx(history["loss"][-1])


def test_serving_signature_takes_uint8_and_matches_keras(model_artifact, examples_artifact):
    import tensorflow as tf

    from edgepipe.models.keras import keras

    serve = tf.saved_model.load(str(model_artifact.path / "saved_model")).signatures[
        "serving_default"
    ]
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 28, 28, 1]
    assert set(serve.structured_outputs) == {"probabilities"}

    images = examples_io.load_numpy(examples_artifact.path, "test")["image"][:32]
    served = serve(image=tf.constant(images))["probabilities"].numpy()
    model = keras.models.load_model(model_artifact.path / "model.keras")
    expected = model.predict(images.astype("float32"), verbose=0)
    assert served.shape == (32, 10)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)


def test_training_changed_the_weights(model_artifact, statistics_artifacts):
    from edgepipe import models
    from edgepipe.models.keras import keras

    trained = keras.models.load_model(model_artifact.path / "model.keras")
    info = json.loads((model_artifact.path / "model.json").read_text())
    keras.utils.set_random_seed(7)  # the seed the fixture trained with: same initial weights
    fresh = models.build("cnn", input_shape=(28, 28, 1), num_classes=10,
                         mean=info["normalization"]["mean"],
                         variance=info["normalization"]["variance"])
    assert fresh.count_params() == trained.count_params()
    for old, new in zip(fresh.get_weights(), trained.get_weights()):
        assert old.shape == new.shape
        assert not np.allclose(old, new)


def test_diverging_training_fails_clearly_and_commits_nothing(
    run_stage, examples_artifact, statistics_artifacts
):
    train_dir = run_stage.store.root / "artifacts" / "train"
    before = sorted(train_dir.iterdir()) if train_dir.exists() else []
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    with pytest.raises(FloatingPointError, match=r"loss became NaN.*learning_rate 1e\+38"):
        run_stage("train", inputs, {"epochs": 2, "batch_size": 32, "learning_rate": 1e38})
    after = sorted(train_dir.iterdir()) if train_dir.exists() else []
    assert after == before
    assert not list((run_stage.store.root / "staging").glob("train-*"))


def test_unknown_model_option_is_rejected_before_training(
    run_stage, examples_artifact, statistics_artifacts
):
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['filter'\].*'filters'"):
        run_stage("train", inputs, {"epochs": 1, "model_options": {"filter": [8]}})


def test_progress_is_logged_per_epoch_and_per_step(
    run_stage, examples_artifact, statistics_artifacts, monkeypatch, caplog
):
    from edgepipe.components.train import fit

    monkeypatch.setattr(fit, "PROGRESS_SECONDS", 0.0)  # report every step, not every 10 s
    caplog.set_level(logging.INFO, logger="edgepipe")
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    run_stage("train", inputs, {"epochs": 1, "batch_size": 32, "model_options": {"filters": [8]}})
    messages = [record.getMessage() for record in caplog.records if record.name == "edgepipe"]
    steps = math.ceil(examples_io.split_size(examples_artifact.path, "train") / 32)
    assert any(message.startswith(f"epoch 1/1 step {steps}/{steps} loss ") for message in messages)
    pattern = (r"epoch 1/1 loss [\d.]+ accuracy [\d.]+ val_loss [\d.]+ val_accuracy [\d.]+ "
               r"[\d.]+ s \(([\d,]+) examples/s in training\)")
    matches = [re.fullmatch(pattern, message) for message in messages]
    assert any(matches), messages
    rate = next(match for match in matches if match).group(1)
    assert int(rate.replace(",", "")) > 0


@pytest.mark.parametrize("torn_history", [False, True], ids=["intact", "torn-history"])
def test_sigkilled_training_resumes_from_the_checkpoint_epoch(
    tmp_path, examples_artifact, statistics_artifacts, torn_history, caplog
):
    """A kill between epochs resumes from the backup; a history.json cut short by the kill
    (a torn write before writes were atomic) costs only the lost epochs' entries, with a
    warning naming the file, instead of failing every later run."""
    import tensorflow as tf

    from edgepipe.components.train import stage as train
    from edgepipe.pipeline.store import Store

    store = Store(tmp_path)
    process = train_kill.start(tmp_path, examples_artifact, statistics_artifacts, "resume",
                               json.dumps({"epochs": 4, "batch_size": 32,
                                           "model_options": {"filters": [8], "dense_units": 16}}))
    backup = store.scratch_dir("train", "resume") / "backup" / "chief"
    while process.poll() is None and tf.train.latest_checkpoint(str(backup)) is None:
        time.sleep(0.05)
    assert process.poll() is None, "training ended before a backup existed: " + \
        process.stderr.read()[-2000:]
    process.send_signal(signal.SIGKILL)  # mid-run: during the next epoch or the slow log
    assert process.wait() == -signal.SIGKILL
    assert store.lookup("train", "resume") is None  # nothing committed by the killed run
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(backup)))
    epochs_done = int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE")) + 1
    assert 1 <= epochs_done < 4
    history_path = store.scratch_dir("train", "resume") / "history.json"
    if torn_history:
        history_path.write_bytes(history_path.read_bytes()[: history_path.stat().st_size // 2])
    caplog.set_level(logging.WARNING, logger="edgepipe")

    inputs = {"examples": examples_artifact, **statistics_artifacts}
    config = train.Config(epochs=4, batch_size=32, model_options={"filters": [8],
                                                                    "dense_units": 16})
    context = Context("tests", "rerun", 7, Runtime(), store.scratch_dir("train", "resume"),
                      log=logging.getLogger("edgepipe.rerun"))
    result, artifacts = store.execute(train.SPEC, "resume", inputs, config, context)
    properties = result.properties
    assert result.resumed is True
    assert properties["resumed_from_epoch"] == epochs_done  # not 0: it did not start over
    model_json = json.loads((artifacts["model"].path / "model.json").read_text())
    assert model_json["resumed_from_epoch"] == epochs_done
    history = json.loads((artifacts["model"].path / "history.json").read_text())
    assert len(history["loss"]) == 4
    kept = history["loss"][epochs_done:] if torn_history else history["loss"]
    assert all(math.isfinite(value) for value in kept)
    warned = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any(str(history_path) in message and "unreadable" in message
               for message in warned) == torn_history
    assert not context.scratch_dir.exists()  # the runner removes scratch once committed


def tiny_ts(source: pathlib.Path, target: pathlib.Path, every: int) -> None:
    """A valid .ts file with every `every`-th series of `source` (all speakers appear)."""
    lines = source.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    target.write_text("\n".join(lines[:start] + lines[start::every]) + "\n")


@pytest.fixture(scope="module")
def vowels(run_stage, tmp_path_factory):
    """Examples and statistics of 45 training and 21 test JapaneseVowels series."""
    folder = tmp_path_factory.mktemp("tiny_vowels")
    for name, every in (("TRAIN", 6), ("TEST", 18)):
        tiny_ts(REPO / "data" / "japanese_vowels" / f"JapaneseVowels_{name}.ts",
                folder / f"{name}.ts", every)
    _, examples = run_stage("ingest", {}, {"source": "ts", "train": str(folder / "TRAIN.ts"),
                                           "test": str(folder / "TEST.ts"),
                                           "validation_fraction": 0.2})
    _, statistics = run_stage("statistics", {"examples": examples["examples"]}, {})
    return {"examples": examples["examples"], **statistics}


def test_sequence_model_trains_and_serves_padded_float32(run_stage, vowels):
    _, artifacts = run_stage("train", vowels, {"model": "lstm", "epochs": 1, "batch_size": 8,
                                               "model_options": {"units": [8]}})
    path = artifacts["model"].path
    info = json.loads((path / "model.json").read_text())
    stats = json.loads((vowels["statistics"].path / "statistics.json").read_text())
    sequence = stats["splits"]["train"]["features"]["sequence"]
    longest = sequence["length"]["max"]
    assert info["input_feature"] == "sequence" and info["input_dtype"] == "float32"
    assert info["input_shape"] == [longest, 12] and info["padding"] == "pre"
    assert info["normalization"]["mean"] == pytest.approx(sequence["mean"])
    assert info["params"] == 4 * (8 * (12 + 8) + 8) + 8 * 9 + 9

    import tensorflow as tf

    from edgepipe.models.keras import keras

    serve = tf.saved_model.load(str(path / "saved_model")).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    assert name == "sequence" and spec.dtype == tf.float32
    assert spec.shape.as_list() == [None, longest, 12]
    test = examples_io.load_numpy(vowels["examples"].path, "test")
    batch = model_inputs.prepare(info, test["sequence"])
    served = serve(sequence=tf.constant(batch))["probabilities"].numpy()
    keras_model = keras.models.load_model(path / "model.keras")
    np.testing.assert_allclose(served, keras_model.predict(batch, verbose=0), atol=1e-5)
    assert served.shape == (len(test["label"]), 9)


def test_sequence_length_and_padding_come_from_config(run_stage, vowels):
    _, artifacts = run_stage("train", vowels, {
        "model": "lstm", "epochs": 1, "batch_size": 8, "sequence_length": 10,
        "padding": "post", "model_options": {"units": [4]}})
    info = json.loads((artifacts["model"].path / "model.json").read_text())
    assert info["input_shape"] == [10, 12] and info["padding"] == "post"


def test_a_model_for_another_input_kind_is_rejected(run_stage, vowels):
    with pytest.raises(ValueError, match=r"model 'cnn' takes 'image' inputs but the examples "
                                         r"hold 'sequence'.*\['conv1d', 'lstm', 'mlp'\]"):
        run_stage("train", vowels, {"model": "cnn", "epochs": 1})


def test_text_model_trains_on_fortunes_and_embeds_the_vocabulary(
        text_model_artifact, text_statistics_artifacts, text_examples_artifact):
    from edgepipe.contracts import text_tokens

    path = text_model_artifact.path
    info = json.loads((path / "model.json").read_text())
    vocabulary = text_tokens.read_vocabulary(
        text_statistics_artifacts["statistics"].path / "vocabulary.txt")
    assert info["model"] == "text_lstm" and info["input_feature"] == "text"
    assert info["input_shape"] == [24] and info["input_dtype"] == "int32"
    assert info["vocabulary"] == vocabulary == text_tokens.read_vocabulary(path / "vocabulary.txt")
    assert info["tokenizer"]["token_pattern"] == text_tokens.TOKEN_PATTERN
    # embedding V*8 + LSTM 4*(16*(8+16)+16) + dense 16*3+3
    assert info["params"] == len(vocabulary) * 8 + 1600 + 51
    history = json.loads((path / "history.json").read_text())
    assert len(history["loss"]) == 1 and math.isfinite(history["loss"][0])

    import tensorflow as tf

    from edgepipe.models.keras import keras

    serve = tf.saved_model.load(str(path / "saved_model")).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    assert name == "tokens" and spec.dtype == tf.int32 and spec.shape.as_list() == [None, 24]
    test = examples_io.load_numpy(text_examples_artifact.path, "test")
    ids = model_inputs.prepare(info, test["text"])
    assert ids.dtype == np.int32 and ids.shape == (len(test["label"]), 24)
    served = serve(tokens=tf.constant(ids))["probabilities"].numpy()
    keras_model = keras.models.load_model(path / "model.keras")
    np.testing.assert_allclose(served, keras_model.predict(ids, verbose=0), atol=1e-5)


def test_text_length_defaults_to_the_longest_training_text_in_tokens(
        run_stage, text_examples_artifact, text_statistics_artifacts):
    inputs = {"examples": text_examples_artifact, **text_statistics_artifacts}
    spec = input_spec.input_spec(text_examples_artifact.path,
                                   text_statistics_artifacts["statistics"].path)
    stats = json.loads((text_statistics_artifacts["statistics"].path / "statistics.json")
                       .read_text())
    longest = stats["splits"]["train"]["features"]["text"]["tokens"]["max"]
    assert spec["input_shape"] == [min(longest, input_spec.MAX_DEFAULT_TEXT_LENGTH)]
    with pytest.raises(ValueError, match=r"takes 'sequence' or 'audio' inputs but the examples "
                                         r"hold 'text'.*\['text_lstm'\]"):
        run_stage("train", inputs, {"model": "lstm", "epochs": 1})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['mean'\]"):
        run_stage("train", inputs, {"model": "text_lstm", "epochs": 1,
                                    "model_options": {"mean": 0.0}})
