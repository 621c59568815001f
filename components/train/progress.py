"""Progress of the train stage: the Keras callback that logs epochs and steps and keeps history.

One function, `progress_callback`, makes a callback that logs one line per epoch (loss,
accuracy, validation metrics, seconds) and step progress in long epochs, notes the first
epoch whose loss is NaN/inf, and writes the history so far to scratch after every epoch, so a
run resumed by BackupAndRestore still reports the whole curve. Kept apart from
components/train/fit.py (fitting with backup/resume) because it
is self-contained bookkeeping around model.fit. Keras is passed in by the caller, which imports it lazily.
"""

from __future__ import annotations

import math
import pathlib
import time

from edgepipe.contracts import artifacts


# What each epoch's line shows: classifiers log accuracy, regression and forecasting models the
# MAE, generators bits per character.
LOGGED = ("loss", "accuracy", "mae", "bits_per_char",
          "val_loss", "val_accuracy", "val_mae", "val_bits_per_char")


def progress_callback(keras, log, epochs: int, steps: int, history: dict,
                      history_path: pathlib.Path, report_seconds: float,
                      batch_size: int | None = None):
    """A callback that logs one line per epoch and, in long epochs, step progress (at most
    every `report_seconds`); with the (global) `batch_size`, each epoch's training throughput
    (examples per second over its training steps, validation excluded). It keeps the history
    in scratch after every epoch, keyed by epoch number, so a resumed run (whose fit() only
    sees the remaining epochs) still returns the whole curve."""

    class Progress(keras.callbacks.Callback):
        _supports_tf_logs = True  # tensor batch logs: no host sync per batch (see fit.py)
        nan_epoch: int | None = None
        total_epochs = epochs  # a time budget (budget.py) may plan fewer
        first_epoch: int | None = None  # the epoch fit started at: > 0 after a resume
        seconds: list[float] = []
        rates: list[float] = []  # training examples per second, one per epoch

        def on_epoch_begin(self, epoch, logs=None):
            if self.first_epoch is None:
                self.first_epoch = epoch
            self.epoch = epoch
            self.started = self.last_report = time.monotonic()
            self.trained = None  # when the epoch's training steps ended (validation starts)

        def on_test_begin(self, logs=None):
            self.trained = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if now - self.last_report >= report_seconds:
                self.last_report = now
                loss = float((logs or {}).get("loss", float("nan")))
                log.info("epoch %d/%d step %d/%d loss %.4f",
                         self.epoch + 1, self.total_epochs, batch + 1, steps, loss)
                self.model.stop_training |= not math.isfinite(loss)  # the epoch end notes it

        def on_epoch_end(self, epoch, logs=None):
            now = time.monotonic()
            seconds = now - self.started
            self.seconds = [*self.seconds, seconds]
            rate = batch_size and steps * batch_size / max(1e-9, (self.trained or now) - self.started)
            self.rates = [*self.rates, rate] if rate else self.rates
            logs = {name: float(value) for name, value in (logs or {}).items()}
            if self.nan_epoch is None and not finite_losses(logs):
                self.nan_epoch = epoch
                self.model.stop_training = True
            metrics = " ".join(f"{name} {logs[name]:.4f}" for name in LOGGED if name in logs)
            log.info("epoch %d/%d %s %.1f s%s", epoch + 1, self.total_epochs, metrics, seconds,
                     f" ({rate:,.0f} examples/s in training)" if rate else "")
            history[str(epoch)] = {**logs, "seconds": seconds,
                                   **({"images_per_second": rate} if rate else {})}
            artifacts.write_json(history_path, history)  # atomic: a kill leaves the old one

        def images_per_second(self) -> float | None:
            return steady_rate(self.rates)

        def mean_epoch_seconds(self) -> float | None:
            return round(sum(self.seconds) / len(self.seconds), 3) if self.seconds else None

    return Progress()


def steady_rate(rates: list[float]) -> float | None:
    """Mean training throughput of the epochs after the first (which also traces the train
    function and fills the input cache), or of the first alone."""
    steady = rates[1:] or rates
    return round(sum(steady) / len(steady), 1) if steady else None


def finite_losses(logs: dict[str, float]) -> bool:
    """No loss in the epoch's logs is NaN/inf (one bad batch makes the epoch mean so too)."""
    return all(math.isfinite(value) for name, value in logs.items() if "loss" in name)
