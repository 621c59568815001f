"""[train] max_minutes: fit the number of epochs and the learning-rate schedule to a time budget.

The same recipe takes minutes on one CPU and an hour on another (AVX-512 or not, bfloat16 or
not). With a budget, training measures its first steps, works out how many of the configured
epochs fit, and stops there, with the cosine decay (if any) stretched over exactly those
epochs, so the last epoch still ends at a learning rate of 0 instead of being cut mid-way.
The budget covers model.fit (training and validation epochs), not loading or saving.

- The plan is made after PROBE_SECONDS of steps (after WARMUP_STEPS, which trace the train
  function), with validation estimated at VALIDATION_COST of a training step per batch, and
  SAFETY of the budget kept in reserve.
- At each epoch's end after the first (which also traces the validation step) the measured
  epoch time is checked: if the plan would overrun the budget
  by more than SLACK, it is shortened (never lengthened, which would raise the learning rate
  again) and the decay re-fitted.
- The plan is kept in scratch (budget.json), so a run resumed after a kill keeps the epochs
  and the schedule its backup was trained with.

What was chosen is logged, returned by `summary()` (the train stage's "budget" property, the
run summary and the report), with what the full configured run would have taken.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Any

WARMUP_STEPS = 2  # the first steps trace the train function: not representative
PROBE_SECONDS = 5.0  # time the steps after the warm-up for at least this long
VALIDATION_COST = 0.35  # a validation batch against a training step (forward pass only)
SAFETY = 0.05  # of the budget, kept for the variation of the step time
SLACK = 0.05  # overrun tolerated before a plan is shortened at an epoch's end


def plan_epochs(budget_seconds: float, elapsed: float, rest_of_epoch: float,
                epoch_seconds: float, done_epochs: int, configured: int) -> int:
    """How many epochs (at least the current one, at most the configured) end within the
    budget: `elapsed` seconds are spent, the current epoch needs `rest_of_epoch` more, each
    further one `epoch_seconds`."""
    spare = budget_seconds * (1 - SAFETY) - elapsed - rest_of_epoch
    further = math.floor(spare / epoch_seconds) if spare > 0 else 0
    return max(done_epochs + 1, min(configured, done_epochs + 1 + further))


def cosine_schedule(optimizer):
    """The optimizer's CosineDecay schedule, or None for a constant learning rate."""
    from edgepipe.models.keras import keras

    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # float16's loss scaling
    schedule = getattr(optimizer, "_learning_rate", None)
    return schedule if isinstance(schedule, keras.optimizers.schedules.CosineDecay) else None


class Planner:
    """The budget's arithmetic and record, fed the clock by the callback (no Keras here)."""

    def __init__(self, max_minutes: float, configured: int, steps: int, validation_steps: int,
                 plan_path: pathlib.Path, log):
        self.max_minutes, self.budget_seconds = max_minutes, max_minutes * 60.0
        self.configured, self.steps, self.validation_steps = configured, steps, validation_steps
        self.plan_path, self.log = plan_path, log
        self.plan = json.loads(plan_path.read_text()) if plan_path.is_file() else None
        self.epoch_seconds: list[float] = []
        self.replans: list[str] = []
        self.apply, self.cosine = (lambda epochs: None), False

    def start(self, now: float, apply, cosine: bool) -> None:
        """Training begins; `apply(epochs)` sets the epochs (and the decay) planned."""
        self.started, self.apply, self.cosine = now, apply, cosine
        if self.plan:
            self.log.info("budget: resuming with the plan of the first run, %d of %d epochs",
                          self.plan["epochs_planned"], self.configured)
            apply(self.plan["epochs_planned"])

    def epoch_begin(self, epoch: int, now: float) -> None:
        self.epoch, self.epoch_started = epoch, now

    def batch_end(self, batch: int, now: float) -> None:
        if self.plan is not None or batch + 1 < WARMUP_STEPS:
            return
        if batch + 1 == WARMUP_STEPS:
            self.probe_started = now
            return
        if now - self.probe_started < PROBE_SECONDS and batch + 1 < self.steps:
            return
        per_step = (now - self.probe_started) / (batch + 1 - WARMUP_STEPS)
        validation = self.validation_steps * per_step * VALIDATION_COST
        self._decide(now, batch + 1, per_step, self.steps * per_step + validation,
                     (self.steps - batch - 1) * per_step + validation)

    def epoch_end(self, epoch: int, now: float) -> bool:
        """Whether training stops after this epoch (shortening the plan if it overruns)."""
        measured = now - self.epoch_started
        self.epoch_seconds = [*self.epoch_seconds, measured]
        if self.plan is None:  # an epoch shorter than the probe: plan from the epoch
            self._decide(now, self.steps, measured / self.steps, measured, 0.0)
        planned = self.plan["epochs_planned"]
        fits = plan_epochs(self.budget_seconds * (1 + SLACK), now - self.started, 0.0,
                           measured, epoch, planned)
        if fits < planned and len(self.epoch_seconds) > 1:  # the first one also traced
            self.replans = [*self.replans, f"after epoch {epoch + 1}: {planned} -> {fits} "
                            f"epochs ({measured:.1f} s an epoch)"]
            self.log.warning("budget: epochs take %.1f s, longer than planned: %d epochs "
                             "instead of %d%s", measured, fits, planned, self._decay_text(fits))
            self._record({**self.plan, "epochs_planned": fits})
        return epoch + 1 >= self.plan["epochs_planned"]

    def _decide(self, now: float, after_steps: int, per_step: float, epoch_seconds: float,
                rest: float) -> None:
        planned = plan_epochs(self.budget_seconds, now - self.started, rest, epoch_seconds,
                              self.epoch, self.configured)
        self._record({"max_minutes": self.max_minutes, "epochs_configured": self.configured,
                      "epochs_planned": planned, "planned_after_steps": after_steps,
                      "seconds_per_step": round(per_step, 5),
                      "estimated_epoch_seconds": round(epoch_seconds, 1)})
        full = now - self.started + rest + (self.configured - self.epoch - 1) * epoch_seconds
        self.log.info("budget %g min: after %d steps, %.3f s a step, about %.0f s an epoch: "
                      "%d of %d epochs fit (all %d would take about %.1f min)%s",
                      self.max_minutes, after_steps, per_step, epoch_seconds, planned,
                      self.configured, self.configured, full / 60, self._decay_text(planned))

    def _record(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.plan_path.parent.mkdir(parents=True, exist_ok=True)
        self.plan_path.write_text(json.dumps(plan))  # a resumed run keeps it
        self.apply(plan["epochs_planned"])

    def _decay_text(self, epochs: int) -> str:
        return (f"; cosine decay over those {epochs} epochs ({epochs * self.steps:,} steps)"
                if self.cosine else "")

    def summary(self, epochs_run: int) -> dict[str, Any]:
        """The plan, the epochs run, the minutes they took and what all the configured
        epochs would have taken at the measured pace (the first epoch, then the later ones')."""
        seconds = self.epoch_seconds
        later = seconds[1:] or seconds
        full = seconds[0] + (self.configured - 1) * sum(later) / len(later) if seconds else None
        return {**(self.plan or {}), "epochs_run": epochs_run,
                "training_minutes": round(sum(seconds) / 60, 2),
                "full_run_minutes_estimate": round(full / 60, 2) if full else None,
                "lr_decay_epochs": (self.plan or {}).get("epochs_planned") if self.cosine
                else None, **({"replanned": self.replans} if self.replans else {})}


def budget_callback(tf, keras, model, config, log, epochs: int, steps: int, validation_data,
                    plan_path: pathlib.Path, progress):
    """The Keras callback that plans and enforces `config.max_minutes` (None without one);
    its `planner` holds the plan. `progress` (progress.py) is told the epochs planned."""
    if not getattr(config, "max_minutes", None):
        return None
    if isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise ValueError("[train] max_minutes cannot be used with multi-worker training: each "
                         "worker would time its own steps and plan its own epochs. Remove "
                         "max_minutes and set [train] epochs.")
    validation_steps = 0 if validation_data is None else max(
        0, int(validation_data.cardinality()))
    planner = Planner(config.max_minutes, epochs, steps, validation_steps, plan_path, log)

    class Budget(keras.callbacks.Callback):
        _supports_tf_logs = True  # no host sync per batch for numpy logs (see progress.py)

        def on_train_begin(self, logs=None):
            self.schedule = cosine_schedule(self.model.optimizer)
            if self.schedule is not None:  # a variable: the traced step reads its new value
                self.decay_steps = tf.Variable(float(self.schedule.decay_steps),
                                               trainable=False, dtype=tf.float32)
                self.schedule.decay_steps = self.decay_steps
            planner.start(time.monotonic(), self._apply, self.schedule is not None)

        def on_epoch_begin(self, epoch, logs=None):
            planner.epoch_begin(epoch, time.monotonic())

        def on_train_batch_end(self, batch, logs=None):
            planner.batch_end(batch, time.monotonic())

        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training |= planner.epoch_end(epoch, time.monotonic())

        def on_train_end(self, logs=None):
            if self.schedule is not None:  # a plain number again, so the optimizer serialises
                self.schedule.decay_steps = int(self.decay_steps.numpy())

        def _apply(self, planned: int) -> None:
            progress.total_epochs = planned
            if self.schedule is not None:
                self.decay_steps.assign(float(planned * steps))

    callback = Budget()
    callback.planner = planner
    return callback
