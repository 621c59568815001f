"""The train stage on the tiny real sample: layout, export, learning, divergence, resume."""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from components import examples_io
from pipeline.stage import Context, Runtime
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
    assert properties["resumed"] is False
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

    from models.keras import keras

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
    import models
    from models.keras import keras

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
    from components import train

    monkeypatch.setattr(train, "PROGRESS_SECONDS", 0.0)  # report every step, not every 10 s
    caplog.set_level(logging.INFO, logger="edgepipe")
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    run_stage("train", inputs, {"epochs": 1, "batch_size": 32, "model_options": {"filters": [8]}})
    messages = [record.getMessage() for record in caplog.records if record.name == "edgepipe"]
    steps = math.ceil(examples_io.split_size(examples_artifact.path, "train") / 32)
    assert any(message.startswith(f"epoch 1/1 step {steps}/{steps} loss ") for message in messages)
    pattern = r"epoch 1/1 loss [\d.]+ accuracy [\d.]+ val_loss [\d.]+ val_accuracy [\d.]+ [\d.]+ s"
    assert any(re.fullmatch(pattern, message) for message in messages), messages


class _Crash(Exception):
    pass


class _CrashAfterEpoch(logging.Handler):
    """Raises out of training when the stage logs the end of a given epoch: a simulated kill."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def emit(self, record):
        if record.getMessage().startswith(self.marker):
            raise _Crash(self.marker)


def test_killed_training_resumes_from_backup(run_stage, examples_artifact, statistics_artifacts):
    from components import train

    store = run_stage.store
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    config = train.Config(epochs=3, batch_size=32, model_options={"filters": [8],
                                                                    "dense_units": 16})
    logger = logging.getLogger("edgepipe.test_resume")
    logger.setLevel(logging.INFO)
    context = Context("tests", "resume-1", 7, Runtime(), store.scratch_dir("train", "resume"),
                      log=logger)
    crash = _CrashAfterEpoch("epoch 3/3")
    logger.addHandler(crash)
    try:
        with pytest.raises(_Crash):
            store.execute(train, "resume", inputs, config, context)
    finally:
        logger.removeHandler(crash)
    assert store.lookup("train", "resume") is None
    assert (context.scratch_dir / "backup").is_dir()  # epochs 1 and 2 survive the crash

    properties, artifacts = store.execute(train, "resume", inputs, config, context)
    assert properties["resumed"] is True
    history = json.loads((artifacts["model"].path / "history.json").read_text())
    assert len(history["loss"]) == 3 and all(math.isfinite(value) for value in history["loss"])
    assert not context.scratch_dir.exists()  # the runner removes scratch once committed


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from components import train
    from pipeline.stage import Artifact, Context, Runtime
    from pipeline.store import Store
    root, examples, statistics, schema = sys.argv[1:]
    store = Store(root)
    inputs = {"examples": Artifact.load(examples), "statistics": Artifact.load(statistics),
              "schema": Artifact.load(schema)}
    config = train.Config(epochs=1, batch_size=16, model_options={"filters": [8]})
    context = Context("tests", "mirrored", 7, Runtime(strategy="mirrored"),
                      store.scratch_dir("train", "mirrored"))
    properties, _ = store.execute(train, "mirrored", inputs, config, context)
    print(json.dumps(properties))
""")


def test_mirrored_strategy_trains_on_two_replicas(
    tmp_path, examples_artifact, statistics_artifacts
):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_USE_LEGACY_KERAS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path), str(examples_artifact.path),
         str(statistics_artifacts["statistics"].path), str(statistics_artifacts["schema"].path)],
        capture_output=True, text=True, env=env, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    properties = json.loads(result.stdout.strip().splitlines()[-1])
    assert properties["replicas"] == 2
    assert properties["strategy"].startswith("mirrored")
    model_json = json.loads(next(pathlib.Path(tmp_path).glob("artifacts/train/*/model/model.json"))
                            .read_text())
    assert model_json["global_batch_size"] == 32
    assert math.isfinite(properties["final"]["loss"])


def test_strategy_choice():
    from components.distribute import choose_strategy

    strategy, description, replicas = choose_strategy(Runtime(strategy="auto"))
    assert replicas == 1 and description.startswith("default")
    _, description, replicas = choose_strategy(Runtime(strategy="one_device"))
    assert replicas == 1 and description == "one_device (/cpu:0)"
    with pytest.raises(ValueError, match="Unknown distribution strategy 'gpus'"):
        choose_strategy(Runtime(strategy="gpus"))
    if "TF_CONFIG" not in os.environ:
        with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
            choose_strategy(Runtime(strategy="multi_worker"))
