"""Semi-supervised training (self-training) on tiny real data: the pseudo-labels are made,
used (the loss over them is non-zero and they move the weights), recorded, and a run killed
in the middle of a round resumes there."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.components.train import semi_supervised
from edgepipe.contracts import unlabeled_artifacts
from edgepipe.pipeline.stage import Context, Runtime
from tests.components import train_kill
from tests.conftest import REPO, SEMI_TRAIN_CONFIG


def test_select_keeps_confident_predictions_and_caps_each_class():
    probabilities = np.array([[0.97, 0.03], [0.60, 0.40], [0.99, 0.01], [0.02, 0.98],
                              [0.96, 0.04]])
    labels, chosen, confidence = semi_supervised.select(probabilities, 0.95)
    assert labels.tolist() == [0, 0, 0, 1, 0] and chosen.tolist() == [1, 0, 1, 1, 1]
    _, capped, _ = semi_supervised.select(probabilities, 0.95, max_per_class=2)
    assert capped.tolist() == [1, 0, 1, 1, 0]  # class 0 keeps its two most confident
    assert confidence[1] == pytest.approx(0.60)


def test_self_training_records_the_pseudo_labels_it_used(semi_model, semi_examples_artifact):
    properties, model = semi_model
    (record,) = properties["pseudo_labels"]
    assert record["round"] == 1 and record["unlabeled"] == 400
    assert 0 < record["selected"] <= 400 and sum(record["per_class"].values()) == record["selected"]
    assert record["loss_before"] > 0 and record["loss_after"] is not None
    assert properties["semi_supervised"]["method"] == "self_training"
    summary, rows = unlabeled_artifacts.read_pseudo_labels(model.path)
    assert len(rows) == record["selected"] and {row["round"] for row in rows} == {1}
    assert all(row["confidence"] >= 0.5 for row in rows)  # the configured threshold
    histogram = summary["rounds"][0]["confidence_histogram"]
    assert sum(histogram["all"]) == 400 and sum(histogram["selected"]) == record["selected"]
    ids = set(examples_io.load_numpy(semi_examples_artifact.path, "unlabeled")["id"])
    assert {row["id"] for row in rows} <= ids
    # teacher (2 epochs) + one round (1 epoch), one history entry per epoch
    history = json.loads((model.path / "history.json").read_text())
    assert len(history["loss"]) == properties["epochs"] == 3
    assert json.loads((model.path / "model.json").read_text())["semi_supervised"]["rounds"] == 1


def test_one_round_uses_the_pseudo_labels(semi_examples_artifact, semi_statistics_artifacts,
                                          tmp_path):
    """From the same teacher, the same data order and the same examples, a round trained on
    other pseudo-labels ends with other weights: the pseudo-labels are what moves them."""
    import tensorflow as tf

    from edgepipe.components.shared import input_spec, model_builder
    from edgepipe.components.train import distribute, stage as train
    from edgepipe.models.keras import keras

    examples = semi_examples_artifact.path
    spec = input_spec.input_spec(examples, semi_statistics_artifacts["statistics"].path)
    config = train.Config.model_validate({**SEMI_TRAIN_CONFIG, "model_options": {
        "filters": [8], "dense_units": 16}})
    placement = distribute.place(Runtime(), 32, 1e-3, "none")
    keras.utils.set_random_seed(3)
    model = model_builder.build_and_compile(keras, config, spec, 10, 1e-3, 10)
    teacher = [weights.copy() for weights in model.get_weights()]
    probabilities = semi_supervised.predict(tf, model, examples, spec)
    labels, chosen, _ = semi_supervised.select(probabilities, 0.0)  # every record
    assert -np.log(probabilities.max(axis=1)).mean() > 0  # the loss over them is not zero
    trained = {}
    for name, pseudo_labels in (("argmax", labels), ("shifted", (labels + 1) % 10)):
        model.set_weights(teacher)
        keras.utils.set_random_seed(3)
        context = Context("tests", name, 3, Runtime(), tmp_path / name,
                          log=logging.getLogger("edgepipe.semi"))
        fitted = semi_supervised.fit_phase(tf, keras, model, examples, spec, placement, config,
                                           context, "round-1", 1, (pseudo_labels, chosen * 1.0))
        assert fitted.history["loss"][0] > 0
        trained[name] = model.get_weights()
    for before, argmax, shifted in zip(teacher, trained["argmax"], trained["shifted"]):
        if before.ndim > 1:  # kernels (the normalisation layer's statistics stay)
            assert not np.allclose(before, argmax) and not np.allclose(argmax, shifted)


def test_semi_supervised_needs_an_unlabeled_split(run_stage, examples_artifact,
                                                  statistics_artifacts):
    with pytest.raises(ValueError, match=r"\[ingest\] unlabeled"):
        run_stage("train", {"examples": examples_artifact, **statistics_artifacts},
                  SEMI_TRAIN_CONFIG)


KILL_CONFIG = {"epochs": 1, "batch_size": 32, "model_options": {"filters": [8], "dense_units": 16},
               "semi_supervised": {"threshold": 0.3, "rounds": 2, "epochs": 3}}


def test_a_run_killed_in_the_middle_of_a_round_resumes_there(
        tmp_path, semi_examples_artifact, semi_statistics_artifacts):
    import tensorflow as tf

    from edgepipe.components.train import stage as train
    from edgepipe.pipeline.store import Store

    store = Store(tmp_path)
    scratch = store.scratch_dir("train", "semi")
    process = train_kill.start(tmp_path, semi_examples_artifact, semi_statistics_artifacts,
                               "semi", json.dumps(KILL_CONFIG))
    backup = scratch / "backup" / "round-1" / "chief"  # the first student's backup
    while process.poll() is None and tf.train.latest_checkpoint(str(backup)) is None:
        time.sleep(0.05)
    assert process.poll() is None, "training ended before round 1 had a backup: " + \
        process.stderr.read()[-2000:]
    process.send_signal(signal.SIGKILL)  # in round 1, after at least one of its 3 epochs
    assert process.wait() == -signal.SIGKILL
    assert store.lookup("train", "semi") is None
    assert (scratch / "phases" / "teacher.weights.h5").is_file()
    assert not (scratch / "phases" / "round-1.weights.h5").exists()
    stored = np.load(scratch / "phases" / "round-1.npz")["probabilities"]

    config = train.Config.model_validate(KILL_CONFIG)
    context = Context("tests", "rerun", 7, Runtime(), scratch,
                      log=logging.getLogger("edgepipe.rerun"))
    result, artifacts = store.execute(
        train.SPEC, "semi", {"examples": semi_examples_artifact, **semi_statistics_artifacts},
        config, context)
    properties = result.properties
    assert result.resumed is True
    assert 2 <= properties["resumed_from_epoch"] < 4  # teacher (1) + 1..2 epochs of round 1
    assert [record["round"] for record in properties["pseudo_labels"]] == [1, 2]
    # round 1 trained on the pseudo-labels it had made before the kill
    _, chosen, _ = semi_supervised.select(stored, 0.3)
    assert properties["pseudo_labels"][0]["selected"] == int(chosen.sum())
    history = json.loads((artifacts["model"].path / "history.json").read_text())
    assert len(history["loss"]) == 1 + 3 + 3
    assert not scratch.exists()


def test_self_training_under_mirrored_and_multi_worker_strategies(
        tmp_path, semi_examples_artifact, semi_statistics_artifacts):
    """The same rounds under MirroredStrategy (two logical CPUs) and a two-process
    MultiWorkerMirroredStrategy cluster: pseudo-labels, training and export work there, and
    the two workers made the same pseudo-labels and reached the same loss."""
    from tests.components.test_distribute import ENV, free_ports, train_command

    # One teacher epoch leaves the most confident predictions near 0.3, and the two-process
    # all-reduce is not bitwise repeatable (8 to 27 of 400 passed 0.3 in three runs), so the
    # threshold is 0.2: twice chance for ten classes, well inside what one epoch reaches.
    config = {"epochs": 1, "batch_size": 16, "model_options": {"filters": [8], "dense_units": 16},
              "semi_supervised": {"threshold": 0.2, "rounds": 1, "epochs": 1}}
    mirrored = subprocess.run(train_command(tmp_path / "mirrored", semi_examples_artifact,
                                            semi_statistics_artifacts, "mirrored", config),
                              capture_output=True, text=True, env=ENV, cwd=REPO)
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    properties = json.loads(mirrored.stdout.strip().splitlines()[-1])
    assert properties["replicas"] == 2 and properties["pseudo_labels"][0]["selected"] > 0

    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = [subprocess.Popen(
        train_command(tmp_path / "cluster", semi_examples_artifact, semi_statistics_artifacts,
                      "multi_worker", config),
        env={**ENV, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                             "task": {"type": "worker", "index": index}})},
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for index in range(2)]
    outputs = [process.communicate() for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    chief = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert chief["replicas"] == 2 and chief["pseudo_labels"][0]["selected"] > 0
    assert f"final loss {chief['final']['loss']!r}"[:18] in outputs[1][1]
