"""One trial of the search: the [train] config with the trial's parameters, trained for
`epochs_per_trial` epochs on the train split and measured on the validation split after every
epoch. After each epoch the metric goes to Optuna; a trial its pruner stops (worse than the
median of earlier trials at the same epoch) ends there and is recorded as pruned.

Trials train on one device with float32 compute, from the pipeline seed (the same initial
weights and shuffling for the same architecture), through the same input pipeline and model
builder as the train stage (components/shared).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

from edgepipe.components.shared import examples_io, input_pipeline, input_spec, model_builder


@dataclasses.dataclass(frozen=True)
class Outcome:
    values: list[float]  # the metric after each epoch trained
    val_accuracy: list[float]  # validation accuracy after each epoch trained
    pruned: bool
    seconds: float

    @property
    def failed(self) -> bool:
        """Diverged (NaN/inf) or stopped before its first validation."""
        return not self.values or not math.isfinite(self.values[-1])


def train(tf, keras, config, examples, statistics, num_classes: int, epochs: int, seed: int,
          metric: str, report: Callable[[float, int], bool]) -> Outcome:
    """Train one trial; `report(value, epoch)` returns True when the trial should stop."""
    started = time.monotonic()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    spec = input_spec.input_spec(examples, statistics, config.sequence_length, config.padding,
                                 config.input_color)
    spec.update(input_spec.label_spec(examples, statistics, config.task, config.model))
    steps = max(1, math.ceil(examples_io.split_size(examples, "train") / config.batch_size))
    training = input_pipeline.dataset(tf, examples, "train", spec, config.batch_size, seed=seed,
                                      shuffle_buffer=config.shuffle_buffer, repeat=True)
    validation = input_pipeline.dataset(tf, examples, "validation", spec, config.batch_size)
    model = model_builder.build_and_compile(keras, config, spec, num_classes,
                                            config.learning_rate, epochs * steps)
    reporter = _reporter(keras, metric, report)
    model.fit(training, validation_data=validation, epochs=epochs, steps_per_epoch=steps,
              verbose=0, callbacks=[keras.callbacks.TerminateOnNaN(), reporter])
    return Outcome(reporter.values, reporter.accuracy, reporter.pruned,
                   round(time.monotonic() - started, 3))


def _reporter(keras, metric: str, report: Callable[[float, int], bool]):
    """A callback that hands the metric to Optuna after every epoch and stops the trial when
    the pruner says so (or the loss is not finite)."""

    class Reporter(keras.callbacks.Callback):
        values: list[float] = []
        accuracy: list[float] = []
        pruned = False

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.values, self.accuracy, self.pruned = [], [], False

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            value = float(logs.get(metric, math.nan))
            self.values.append(value)
            self.accuracy.append(float(logs.get("val_accuracy", math.nan)))
            if not math.isfinite(value) or not math.isfinite(float(logs.get("loss", 0.0))):
                self.values[-1] = math.nan
                self.model.stop_training = True
            elif report(value, epoch):
                self.pruned = True
                self.model.stop_training = True

    return Reporter()
