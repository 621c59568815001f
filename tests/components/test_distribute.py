"""Training under tf.distribute for real: MirroredStrategy over two logical CPUs, a two-process
MultiWorkerMirroredStrategy cluster on localhost, strategy choice and precision policy."""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import socket
import subprocess
import sys
import textwrap

import pytest

from edgepipe.pipeline.stage import Runtime
from tests.conftest import REPO

TRAIN_SCRIPT = textwrap.dedent("""
    import json, logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("edgepipe").setLevel(logging.INFO)
    import tensorflow as tf
    if sys.argv[4] == "mirrored":  # two replicas on one CPU, before TensorFlow initialises
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from edgepipe.components.train import stage as train
    from edgepipe.pipeline.stage import Artifact, Context, Runtime
    from edgepipe.pipeline.store import Store
    root, examples, statistics, strategy, config = sys.argv[1:]
    store = Store(root)
    inputs = {"examples": Artifact.load(examples), "statistics": Artifact.load(statistics)}
    context = Context("tests", strategy, 7, Runtime(strategy=strategy),
                      store.scratch_dir("train", strategy))
    result, _ = store.execute(train.SPEC, strategy, inputs,
                              train.Config(**json.loads(config)), context)
    print(json.dumps(result.properties))
""")


def train_command(root, examples, statistics, strategy: str, config: dict) -> list[str]:
    return [sys.executable, "-c", TRAIN_SCRIPT, str(root), str(examples.path),
            str(statistics["statistics"].path), strategy,
            json.dumps(config)]


ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_USE_LEGACY_KERAS": "1"}


def test_mirrored_strategy_trains_on_two_replicas_with_scaled_batch_and_rate(
    tmp_path, examples_artifact, statistics_artifacts
):
    config = {"epochs": 1, "batch_size": 16, "learning_rate": 0.001, "lr_scaling": "linear",
              "model_options": {"filters": [8]}}
    result = subprocess.run(
        train_command(tmp_path, examples_artifact, statistics_artifacts, "mirrored", config),
        capture_output=True, text=True, env=ENV, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    properties = json.loads(result.stdout.strip().splitlines()[-1])
    assert properties["replicas"] == 2
    assert properties["strategy"].startswith("mirrored")
    assert math.isfinite(properties["final"]["loss"])
    model_dir = next(pathlib.Path(tmp_path).glob("artifacts/train/*/model"))
    assert sorted(path.name for path in model_dir.iterdir()) == [
        "history.json", "logs", "manifest.json", "model.json", "model.keras", "saved_model"]
    model_json = json.loads((model_dir / "model.json").read_text())
    assert model_json["global_batch_size"] == 32
    assert model_json["learning_rate"] == pytest.approx(0.002)  # linear: 2 replicas x 0.001


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_agree_on_the_loss_and_only_the_chief_commits(
    tmp_path, examples_artifact, statistics_artifacts
):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    config = {"epochs": 2, "batch_size": 16, "model_options": {"filters": [8],
                                                               "dense_units": 16}}
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            train_command(tmp_path, examples_artifact, statistics_artifacts, "multi_worker",
                          config),
            env={**ENV, "TF_CONFIG": json.dumps(tf_config)}, cwd=REPO, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))
    outputs = [process.communicate() for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]  # the non-chief exits cleanly too

    chief = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert chief["replicas"] == 2 and chief["global_batch_size"] == 32
    assert chief["strategy"].startswith("multi_worker (task worker:0 of 2 workers)")
    assert outputs[1][0].strip() == ""  # the worker returned no properties: it committed none
    worker_loss = re.search(r"worker-1 finished training \(2 epochs, final loss ([\d.e-]+)\)",
                            outputs[1][1])
    assert worker_loss, outputs[1][1][-3000:]
    assert float(worker_loss.group(1)) == pytest.approx(chief["final"]["loss"], rel=1e-6)

    committed = list((tmp_path / "artifacts" / "train").iterdir())
    assert [path.name for path in committed] == ["multi_worker"]
    assert (committed[0] / "model" / "saved_model" / "saved_model.pb").is_file()
    assert not list((tmp_path / "staging").glob("*"))
    assert not (tmp_path / "scratch").exists() or not any((tmp_path / "scratch").iterdir())


def test_strategy_choice_and_roles():
    from edgepipe.components.train.distribute import choose_strategy, worker_role

    strategy, description, replicas = choose_strategy(Runtime(strategy="auto"))
    assert replicas == 1 and description.startswith("default")
    assert worker_role(strategy) == (True, "chief")
    _, description, replicas = choose_strategy(Runtime(strategy="one_device"))
    assert replicas == 1 and description == "one_device (/cpu:0)"
    with pytest.raises(ValueError, match="Unknown distribution strategy 'gpus'"):
        choose_strategy(Runtime(strategy="gpus"))
    if "TF_CONFIG" not in os.environ:
        with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
            choose_strategy(Runtime(strategy="multi_worker"))


def test_float16_without_a_gpu_is_refused_with_the_alternative(
    run_stage, examples_artifact, statistics_artifacts
):
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    with pytest.raises(ValueError, match="mixed_float16.*needs a GPU.*mixed_bfloat16"):
        run_stage("train", inputs, {"epochs": 1, "precision": "mixed_float16"})


def test_bfloat16_mixed_precision_trains_and_saves_a_float32_copy(
    run_stage, examples_artifact, statistics_artifacts
):
    from edgepipe.models.keras import keras

    inputs = {"examples": examples_artifact, **statistics_artifacts}
    properties, artifacts = run_stage("train", inputs, {
        "epochs": 1, "batch_size": 32, "precision": "mixed_bfloat16",
        "lr_schedule": "cosine", "model_options": {"filters": [8]}})
    assert math.isfinite(properties["final"]["loss"])
    assert keras.mixed_precision.global_policy().name == "float32"  # reset for later stages
    model = keras.models.load_model(artifacts["model"].path / "model.keras")
    # Trained in bfloat16, saved as a float32 copy of the trained weights: the bf16 graph
    # would not convert to builtin-op int8 TFLite (test_train_recipe converts it).
    assert model.get_layer("conv1").compute_dtype == "float32"
    assert model.output.dtype == "float32"
    info = json.loads((artifacts["model"].path / "model.json").read_text())
    assert info["precision"] == "mixed_bfloat16" and info["lr_schedule"] == "cosine"
