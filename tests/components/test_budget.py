"""[train] max_minutes: how many epochs a budget fits, the cosine decay stretched over exactly
those epochs, and what the train stage records and prints about it."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest

from edgepipe.components.train import budget


def test_plan_counts_the_epochs_that_end_within_the_budget():
    # 600 s budget (570 usable), 30 s spent, 60 s left in the first epoch, 100 s an epoch.
    assert budget.plan_epochs(600, 30, 60, 100, 0, configured=15) == 5
    assert budget.plan_epochs(600, 30, 60, 100, 0, configured=3) == 3  # never more
    assert budget.plan_epochs(60, 30, 60, 100, 0, configured=15) == 1  # at least the current
    assert budget.plan_epochs(600, 300, 0, 100, 4, configured=15) == 7  # re-planned later


def test_cosine_decay_ends_at_zero_on_the_last_planned_epoch(tmp_path):
    """A plan of 3 of 10 epochs (as a resumed run reads it): fit stops after 3, and the rate
    the optimizer applied follows the 3-epoch cosine (1% of the start on the last step, where
    the 10-epoch curve would still be at 82%), reaching 0 when the 3 epochs end."""
    import tensorflow as tf

    from edgepipe.components.train.progress import progress_callback
    from edgepipe.models.keras import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3)])
    steps = 5
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.01, 10 * steps)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plan = tmp_path / "budget.json"
    plan.write_text(json.dumps({"max_minutes": 1.0, "epochs_configured": 10,
                                "epochs_planned": 3}))
    log = logging.getLogger("test_budget")
    progress = progress_callback(keras, log, 10, steps, {}, tmp_path / "history.json", 60.0)
    config = type("Config", (), {"max_minutes": 1.0})
    callback = budget.budget_callback(tf, keras, model, config, log, 10, steps, None, plan,
                                      progress)
    rates = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: rates.append(float(model.optimizer.learning_rate)))
    x = np.random.default_rng(0).standard_normal((40, 4)).astype("float32")
    y = np.arange(40) % 3
    history = model.fit(x, y, batch_size=8, epochs=10, steps_per_epoch=steps, verbose=0,
                        callbacks=[progress, callback, record])
    assert len(history.history["loss"]) == 3 and progress.total_epochs == 3
    def cosine(step, horizon):  # the rate of the step counted from 0
        return 0.01 * 0.5 * (1 + np.cos(np.pi * step / horizon))

    assert rates[0] == pytest.approx(cosine(steps - 1, 3 * steps), rel=1e-4)
    assert rates[-1] == pytest.approx(cosine(3 * steps - 1, 3 * steps), rel=1e-3)
    assert float(model.optimizer._learning_rate(3 * steps)) == pytest.approx(0.0, abs=1e-9)
    assert callback.planner.summary(3)["epochs_run"] == 3
    assert isinstance(model.optimizer.get_config()["learning_rate"]["config"]["decay_steps"],
                      int)  # serialisable again (model.keras keeps the optimizer)


def test_train_stage_fits_its_epochs_to_a_budget(run_stage, examples_artifact,
                                                 statistics_artifacts, caplog):
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    config = {"epochs": 400, "batch_size": 32, "lr_schedule": "cosine", "max_minutes": 0.2,
              "precision": "float32", "model_options": {"filters": [8]}}
    with caplog.at_level(logging.INFO, logger="edgepipe"):
        properties, artifacts = run_stage("train", inputs, config)
    spent = properties["budget"]
    assert spent["max_minutes"] == 0.2 and spent["epochs_configured"] == 400
    assert 1 <= spent["epochs_run"] == spent["epochs_planned"] == properties["epochs"] < 400
    assert spent["lr_decay_epochs"] == spent["epochs_planned"]
    assert spent["full_run_minutes_estimate"] > spent["training_minutes"]
    printed = " ".join(record.getMessage() for record in caplog.records)
    first_plan = int(re.search(r"(\d+) of 400 epochs fit", printed).group(1))
    if "replanned" in spent:  # epochs measured slower than the first steps: only shortened
        assert first_plan > spent["epochs_planned"]
        assert "instead of" in printed and spent["replanned"][-1].endswith("s an epoch)")
    else:
        assert first_plan == spent["epochs_planned"]
    info = json.loads((artifacts["model"].path / "model.json").read_text())
    assert info["budget"] == spent and info["epochs"] == spent["epochs_run"]


def test_budget_and_self_training_do_not_mix():
    from edgepipe.components.train import stage as train

    with pytest.raises(ValueError, match="max_minutes fits one model.fit"):
        train.Config.model_validate({"max_minutes": 5, "semi_supervised": {}})
