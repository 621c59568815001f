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


def budget_callback(tf, keras, model, log, max_minutes: float, configured: int, steps: int,
                    validation_data, plan_path: pathlib.Path, progress):
    """The Keras callback that plans and enforces the budget (see the module docstring).
    `progress` (progress.py's callback) is told the planned number of epochs for its lines."""
    if isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise ValueError("[train] max_minutes cannot be used with multi-worker training: each "
                         "worker would time its own steps and plan its own epochs. Remove "
                         "max_minutes and set [train] epochs.")
    budget_seconds = max_minutes * 60.0
    validation_steps = 0 if validation_data is None else max(
        0, int(validation_data.cardinality()))
    saved = json.loads(plan_path.read_text()) if plan_path.is_file() else None

    class Budget(keras.callbacks.Callback):
        _supports_tf_logs = True  # no host sync per batch for numpy logs (see progress.py)
        plan: dict[str, Any] | None = saved
        epoch_seconds: list[float] = []
        replans: list[str] = []

        def on_train_begin(self, logs=None):
            self.started = time.monotonic()
            self.schedule = cosine_schedule(self.model.optimizer)
            if self.schedule is not None:  # a variable: the traced step reads its new value
                self.decay_steps = tf.Variable(float(self.schedule.decay_steps),
                                               trainable=False, dtype=tf.float32)
                self.schedule.decay_steps = self.decay_steps
            if self.plan:
                log.info("budget: resuming with the plan of the first run, %d of %d epochs",
                         self.plan["epochs_planned"], configured)
                self._apply(self.plan["epochs_planned"])

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.epoch_started = epoch, time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            if self.plan is not None or batch + 1 < WARMUP_STEPS:
                return
            now = time.monotonic()
            if batch + 1 == WARMUP_STEPS:
                self.probe_started = now
                return
            timed = batch + 1 - WARMUP_STEPS
            if now - self.probe_started < PROBE_SECONDS and batch + 1 < steps:
                return
            per_step = (now - self.probe_started) / timed
            validation = validation_steps * per_step * VALIDATION_COST
            self._decide(now, batch + 1, per_step, steps * per_step + validation,
                         (steps - batch - 1) * per_step + validation)

        def on_epoch_end(self, epoch, logs=None):
            now = time.monotonic()
            self.epoch_seconds = [*self.epoch_seconds, now - self.epoch_started]
            if self.plan is None:  # an epoch shorter than the probe: plan from the epoch
                self._decide(now, steps, self.epoch_seconds[-1] / steps,
                             self.epoch_seconds[-1], 0.0)
            planned, measured = self.plan["epochs_planned"], self.epoch_seconds[-1]
            fits = plan_epochs(budget_seconds * (1 + SLACK), now - self.started, 0.0,
                               measured, epoch, planned)
            if fits < planned and len(self.epoch_seconds) > 1:  # the first one also traced
                self.replans = [*self.replans, f"after epoch {epoch + 1}: {planned} -> {fits} "
                                f"epochs ({measured:.1f} s an epoch)"]
                log.warning("budget: epochs take %.1f s, longer than planned: %d epochs "
                            "instead of %d%s", measured, fits, planned,
                            self._schedule_text(fits))
                self.plan = {**self.plan, "epochs_planned": fits}
                plan_path.write_text(json.dumps(self.plan))
                self._apply(fits)
            if epoch + 1 >= self.plan["epochs_planned"]:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.schedule is not None:  # a plain number again, so the optimizer serialises
                self.schedule.decay_steps = int(self.decay_steps.numpy())

        def _decide(self, now: float, after_steps: int, per_step: float,
                    epoch_seconds: float, rest: float) -> None:
            planned = plan_epochs(budget_seconds, now - self.started, rest, epoch_seconds,
                                  self.epoch, configured)
            self.plan = {
                "max_minutes": max_minutes, "epochs_configured": configured,
                "epochs_planned": planned, "planned_after_steps": after_steps,
                "seconds_per_step": round(per_step, 5),
                "estimated_epoch_seconds": round(epoch_seconds, 1),
            }
            plan_path.parent.mkdir(parents=True, exist_ok=True)
            plan_path.write_text(json.dumps(self.plan))
            self._apply(planned)
            full = now - self.started + rest + (configured - self.epoch - 1) * epoch_seconds
            log.info("budget %g min: after %d steps, %.3f s a step, about %.0f s an epoch: "
                     "%d of %d epochs fit (all %d would take about %.1f min)%s", max_minutes,
                     after_steps, per_step, epoch_seconds, planned, configured, configured,
                     full / 60, self._schedule_text(planned))

        def _apply(self, epochs: int) -> None:
            progress.total_epochs = epochs
            if self.schedule is not None:
                self.decay_steps.assign(float(epochs * steps))

        def _schedule_text(self, epochs: int) -> str:
            if self.schedule is None:
                return ""
            return f"; cosine decay over those {epochs} epochs ({epochs * steps:,} steps)"

        def summary(self, epochs_run: int) -> dict[str, Any]:
            """The plan, the epochs run, the minutes they took and what all the configured
            epochs would have taken at the measured pace."""
            seconds = self.epoch_seconds
            later = seconds[1:] or seconds
            pace = sum(later) / len(later) if later else 0.0
            full = (seconds[0] + (configured - 1) * pace) if seconds else None
            return {**(self.plan or {}), "epochs_run": epochs_run,
                    "training_minutes": round(sum(seconds) / 60, 2),
                    "full_run_minutes_estimate": round(full / 60, 2) if full else None,
                    "lr_decay_epochs": self.plan["epochs_planned"]
                    if self.schedule is not None and self.plan else None,
                    **({"replanned": self.replans} if self.replans else {})}

    return Budget()
