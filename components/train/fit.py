"""model.fit with what a long run needs: resume after a kill, NaN detection, progress logs,
TensorBoard curves, and the per-epoch history kept across a resume.

Training state is backed up every epoch in the stage's scratch directory (keyed by the cache
key, outside staging), so a killed run resumes where it stopped. Each worker of multi-worker
training keeps its history and logs in its own scratch folder; the backup folder is shared
(BackupAndRestore itself separates the chief's checkpoint from the others').
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
from typing import Any

from edgepipe.components.train.budget import budget_callback
from edgepipe.components.train.progress import progress_callback
from edgepipe.contracts import artifacts

PROGRESS_SECONDS = 10.0  # during long epochs, log step progress at most this often
# The metrics kept in the history: classifiers log accuracy, regression models the MAE,
# generators the bits per character.
METRICS = ("loss", "accuracy", "mae", "bits_per_char", "val_loss", "val_accuracy", "val_mae",
           "val_bits_per_char")


@dataclasses.dataclass(frozen=True)
class Fitted:
    history: dict[str, list[float | None]]  # metric -> one value per epoch, resumed ones too
    work_dir: pathlib.Path  # this worker's scratch folder (TensorBoard logs/)
    resumed_from_epoch: int | None  # None: trained from scratch
    mean_epoch_seconds: float | None
    images_per_second: float | None = None  # training steps only (see progress.py)
    budget: dict[str, Any] | None = None  # [train] max_minutes: the plan and what it cost


def fit(tf, keras, model, training_data, validation_data, steps: int, config, context,
        chief: bool, role: str, epochs: int | None = None, phase: str = "",
        global_batch: int | None = None) -> Fitted:
    """Fit for `epochs` (default config.epochs) of `steps` steps, resuming from a backup in
    scratch if any. A `phase` name (one fit of several, as in semi-supervised rounds) gives
    the fit its own backup, history file and TensorBoard folder."""
    epochs = epochs or config.epochs
    scratch = pathlib.Path(context.scratch_dir)
    backup_dir = scratch / "backup" / phase if phase else scratch / "backup"
    work_dir = scratch if chief else scratch / role
    resumed = tf.train.latest_checkpoint(str(backup_dir / "chief")) is not None
    if resumed:
        context.log.info("resuming from the training backup in %s", backup_dir)
    history_path = work_dir / (f"history-{phase}.json" if phase else artifacts.HISTORY)
    # TensorBoard writes to scratch so the curves of a killed run survive into the resumed one.
    logs_dir = work_dir / "logs" / phase if phase else work_dir / "logs"
    plan_path = work_dir / "budget.json"  # a time budget's plan (budget.py)
    if not resumed:  # leftovers of a run killed before its first backup describe nothing
        clear(history_path, logs_dir, plan_path)
    work_dir.mkdir(parents=True, exist_ok=True)
    epochs_history = read_history(history_path, context.log)
    progress = progress_callback(keras, context.log, epochs, steps, epochs_history,
                                 history_path, PROGRESS_SECONDS, global_batch)
    budget = None if phase else budget_callback(tf, keras, model, config, context.log, epochs,
                                                steps, validation_data, plan_path, progress)
    model.fit(
        training_data,
        validation_data=validation_data,
        epochs=epochs,
        steps_per_epoch=steps,
        verbose=0,
        # Progress records the epoch before BackupAndRestore commits it, so a kill between
        # the two re-runs that epoch rather than losing its history entry. It also stops
        # training on a NaN/inf loss (at its next progress line or the epoch's end): Keras's
        # TerminateOnNaN would read the loss after every batch, a host sync per step.
        callbacks=[
            progress,
            *([budget] if budget else []),  # after progress: it logs the epoch, then stops
            keras.callbacks.BackupAndRestore(backup_dir=str(backup_dir)),
            keras.callbacks.TensorBoard(log_dir=str(logs_dir)),
        ],
    )
    if progress.nan_epoch is not None:
        clear(backup_dir, history_path, logs_dir, plan_path)  # a re-run starts afresh
        raise FloatingPointError(
            f"Training diverged: the loss became NaN/inf in epoch {progress.nan_epoch + 1} of "
            f"{epochs}{' of ' + phase if phase else ''} (model {config.model!r}, learning_rate {config.learning_rate}, "
            f"model_options {config.model_options}). No model was saved; lower [train] "
            "learning_rate or check the model options and the input statistics."
        )
    epochs = budget.planner.plan["epochs_planned"] if budget and budget.planner.plan else epochs
    first_epoch = progress.first_epoch if progress.first_epoch is not None else epochs
    return Fitted(history=history_table(epochs_history, epochs), work_dir=work_dir,
                  resumed_from_epoch=first_epoch if resumed else None,
                  mean_epoch_seconds=progress.mean_epoch_seconds(),
                  images_per_second=progress.images_per_second(),
                  budget=budget.planner.summary(epochs) if budget else None)


def history_table(epochs_history: dict[str, dict[str, float]], epochs: int) -> dict:
    """{epoch: {metric: value}} -> {metric: [one value per epoch]} for the metrics logged."""
    last = epochs_history.get(str(epochs - 1), {})
    return {metric: [epochs_history.get(str(epoch), {}).get(metric) for epoch in range(epochs)]
            for metric in METRICS if metric in last}


def read_history(path: pathlib.Path, log) -> dict:
    """The per-epoch history a killed run kept; an unreadable file counts as none (with a
    warning naming it), since the backup it describes is what training resumes from."""
    if not path.is_file():
        return {}
    try:
        history = json.loads(path.read_text())
        if isinstance(history, dict):
            return history
        raise ValueError(f"a JSON {type(history).__name__}, not an object")
    except ValueError as error:
        log.warning("%s is unreadable (%s): the epochs before the resume will have no history "
                    "entries", path, error)
        return {}


def clear(*paths: pathlib.Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
