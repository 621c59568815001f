"""Semi-supervised training: self-training on the unlabeled split, `[train.semi_supervised]`.

Self-training runs in phases: a teacher is trained on the labelled train split; then each
round labels the unlabeled split with the current model, keeps the pseudo-labels whose
confidence reaches `threshold` (at most `max_per_class` per class, the most confident), and
trains the student on the labelled examples (weight 1) mixed with the pseudo-labelled ones
(weight `unlabeled_weight`) for `epochs`, starting from the teacher's weights (or, with
`student_init = "fresh"`, from the initial ones). The student labels the data for the next
round. Images are augmented in every phase (`augment`), the noise that lets a student do
better than its teacher. `rounds = 0` trains the teacher alone: a labelled-only model with
the same augmentation and budget, for comparisons.

Every phase is a model.fit under the stage's strategy with its own BackupAndRestore folder in
scratch; a finished phase leaves its weights (and a round its pseudo-labels) there, so a run
killed anywhere resumes in the phase it was in, from its last epoch. What each round did
(pseudo-labels per class, their confidence histogram, the loss over them before and after the
round) goes to pseudo_labels.json / pseudo_labels.csv in the model artifact and to the stage's
`pseudo_labels` metrics. The true labels of unlabelled records are never read here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any, Literal

import numpy as np
import pydantic

from edgepipe.components.shared import examples_io, input_pipeline
from edgepipe.pipeline.stage import StageConfig

CONFIDENCE_BINS = 20  # equal-width bins of the confidence histograms in pseudo_labels.json
PREDICT_BATCH = 512


class Settings(StageConfig):
    """[train.semi_supervised]: present = semi-supervised training on the unlabeled split."""

    method: Literal["self_training"] = pydantic.Field(
        "self_training", description="self_training: confidence-thresholded pseudo-labels, "
        "rounds of teacher -> student.")
    threshold: float = pydantic.Field(
        0.95, gt=0.0, le=1.0, description="A pseudo-label is used when the model's "
        "probability for it is at least this.")
    unlabeled_weight: float = pydantic.Field(
        1.0, gt=0.0, le=1_000.0, description="Loss weight of a pseudo-labelled example (labelled: 1).")
    rounds: int = pydantic.Field(
        2, ge=0, le=20, description="Teacher -> student rounds after the teacher; 0 trains "
        "the teacher only (a labelled-only baseline with the same augmentation).")
    epochs: int | None = pydantic.Field(
        None, ge=1, le=100_000, description="Epochs of each student round; default [train] epochs.")
    labeled_share: float | None = pydantic.Field(
        None, gt=0.0, lt=1.0, description="Share of each student batch drawn from the "
        "labelled examples (they repeat more often than the pseudo-labelled ones); default: "
        "their share of all the examples.")
    student_init: Literal["teacher", "fresh"] = pydantic.Field(
        "teacher", description="A student starts from its teacher's weights ('teacher': "
        "cheap, fine-tunes) or from the initial weights ('fresh': a new model that learns "
        "the pseudo-labels from scratch, as Noisy Student does).")
    max_per_class: int = pydantic.Field(
        0, ge=0, description="At most this many pseudo-labels per class and round, the most "
        "confident; 0: no limit.")
    augment: Literal["none", "shift", "flip_shift", "flip_shift_cutout"] = pydantic.Field(
        "shift", description="Image augmentation in every phase: 'shift' (up to 2 pixels), "
        "'flip_shift' (also left-right flips), 'flip_shift_cutout' (also a blanked square), "
        "'none' (the only choice for sequences and text).")


@dataclasses.dataclass
class Outcome:
    fitted: Any  # fit.Fitted of the whole run: the phases' histories end to end
    summary: dict[str, Any]  # pseudo_labels.json
    rows: list[dict[str, Any]]  # pseudo_labels.csv
    resumed: bool  # some phase continued from a backup or was finished before a kill


def train(tf, keras, model, examples, spec: dict, placement, config, context,
          class_names: list[str]) -> Outcome:
    """The teacher and `rounds` students, each phase resumable; `model` ends as the last
    student."""
    from edgepipe.components.train import fit

    settings = config.semi_supervised
    _check(examples, spec, settings)
    ids = examples_io.load_numpy(examples, "unlabeled")["id"]
    folder = _phases_dir(context, placement)
    phases = ["teacher"] + [f"round-{number}" for number in range(1, settings.rounds + 1)]
    histories, rounds, rows, resumed_from = [], [], [], None
    initial = model.get_weights()  # the seeded initialisation, the same after a resume
    for index, phase in enumerate(phases):
        pseudo = None
        if index:
            pseudo, record = _pseudo_labels(tf, model, examples, spec, settings, ids,
                                            class_names, folder, index)
            rounds.append(record)
            if index > 1:  # the loss of this round's teacher over the pseudo-labels it learnt
                rounds[-2]["loss_after"] = _loss_over(pseudo[3], rows, ids, index - 1)
            rows += [{"round": index, "id": str(ids[position]), "label": int(pseudo[0][position]),
                      "confidence": float(pseudo[2][position])}
                     for position in np.flatnonzero(pseudo[1] > 0)]
        done = folder / f"{phase}.weights.h5"
        epochs_before = sum(len(table) for table in histories)
        if done.is_file():  # finished before a kill
            model.load_weights(str(done))
            histories.append(fit.read_history(_history_path(context, placement, phase),
                                              context.log))
            resumed_from = epochs_before + len(histories[-1])
            continue
        epochs = config.epochs if phase == "teacher" else (settings.epochs or config.epochs)
        if index and settings.student_init == "fresh":
            model.set_weights(initial)
        fitted = fit_phase(tf, keras, model, examples, spec, placement, config, context,
                           phase, epochs, pseudo[:2] if pseudo else None)
        if fitted.resumed_from_epoch is not None:
            resumed_from = epochs_before + fitted.resumed_from_epoch
        histories.append(fit.read_history(_history_path(context, placement, phase), context.log))
        _save_weights(model, done)
    if rounds:  # how well the final model fits the last round's pseudo-labels
        rounds[-1]["loss_after"] = _loss_over(predict(tf, model, examples, spec), rows, ids,
                                              len(rounds))
    return Outcome(_whole_history(fit, histories, context, placement, resumed_from),
                   _summary(settings, rounds), rows, resumed_from is not None)


def fit_phase(tf, keras, model, examples, spec: dict, placement, config, context, phase: str,
              epochs: int, pseudo=None):
    """One phase: a fresh optimizer, then model.fit on the labelled train split mixed with
    `pseudo` = (labels, weights) of the unlabeled split (None: the labelled examples only)."""
    from edgepipe.components.shared import model_builder
    from edgepipe.components.train import distribute, fit

    settings = config.semi_supervised
    count = examples_io.split_size(examples, "train")
    if pseudo is not None:
        count += int((pseudo[1] > 0).sum())
    steps = max(1, math.ceil(count / placement.global_batch))
    with placement.strategy.scope():
        model_builder.compile_model(keras, model, config, placement.learning_rate, epochs * steps)
    training = distribute.sharded_dataset(
        tf, placement.strategy,
        lambda input_context, batch: input_pipeline.weighted_dataset(
            tf, examples, spec, batch, pseudo, settings.augment, seed=context.seed,
            shuffle_buffer=config.shuffle_buffer, input_context=input_context,
            labeled_share=settings.labeled_share),
        placement.global_batch)
    validation = None
    if examples_io.split_size(examples, "validation"):
        validation = input_pipeline.dataset(tf, examples, "validation", spec,
                                            placement.global_batch)
    context.log.info("semi-supervised %s: %d examples (%d steps per epoch), %d epochs", phase,
                     count, steps, epochs)
    return fit.fit(tf, keras, model, training, validation, steps, config, context,
                   placement.chief, placement.role, epochs=epochs, phase=phase)


def select(probabilities: np.ndarray, threshold: float, max_per_class: int = 0):
    """(labels, chosen mask, confidences): the argmax where its probability reaches the
    threshold, at most `max_per_class` per class (the most confident; 0: all)."""
    labels = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    chosen = confidence >= threshold
    if max_per_class:
        for label in np.unique(labels[chosen]):
            members = np.flatnonzero(chosen & (labels == label))
            if len(members) > max_per_class:
                ranked = members[np.argsort(-confidence[members], kind="stable")]
                chosen[ranked[max_per_class:]] = False
    return labels, chosen, confidence


def _pseudo_labels(tf, model, examples, spec, settings, ids, class_names, folder, number):
    """(labels, weights, confidences) of round `number` and its record; kept in scratch so a
    resumed round trains on the very pseudo-labels it started with."""
    path = folder / f"round-{number}.npz"
    if path.is_file():
        stored = np.load(path)
        probabilities = stored["probabilities"]
    else:
        probabilities = predict(tf, model, examples, spec)
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.npz")
        np.savez(temporary, probabilities=probabilities)
        os.replace(temporary, path)
    labels, chosen, confidence = select(probabilities, settings.threshold, settings.max_per_class)
    weights = np.where(chosen, settings.unlabeled_weight, 0.0)
    edges = np.linspace(0.0, 1.0, CONFIDENCE_BINS + 1)
    record = {
        "round": number, "teacher": "teacher" if number == 1 else f"round-{number - 1}",
        "unlabeled": len(ids), "selected": int(chosen.sum()),
        "share": float(chosen.mean()) if len(ids) else 0.0,
        "per_class": {name: int((chosen & (labels == index)).sum())
                      for index, name in enumerate(class_names)},
        "mean_confidence": float(confidence[chosen].mean()) if chosen.any() else None,
        # The teacher's cross entropy on its own pseudo-labels: what the student starts from.
        "loss_before": float(-np.log(np.clip(confidence[chosen], 1e-7, 1)).mean())
        if chosen.any() else None,
        "confidence_histogram": {"edges": edges.tolist(),
                                 "all": np.histogram(confidence, edges)[0].tolist(),
                                 "selected": np.histogram(confidence[chosen], edges)[0].tolist()},
    }
    return (labels, weights, confidence, probabilities), record


def predict(tf, model, examples, spec: dict) -> np.ndarray:
    """Class probabilities of every record of the unlabeled split, in file order."""
    data = input_pipeline.dataset(tf, examples, "unlabeled", spec, PREDICT_BATCH)
    dtype = tf.int32 if spec["input_feature"] == "text" else tf.float32
    call = tf.function(lambda values: model(values, training=False),
                       input_signature=[tf.TensorSpec([None, *spec["input_shape"]], dtype)])
    return np.concatenate([call(values).numpy() for values, _ in data])


def _loss_over(probabilities: np.ndarray, rows, ids, number: int) -> float | None:
    """Mean cross entropy, under `probabilities` of the unlabeled split, of round `number`'s
    pseudo-labels."""
    mine = [row for row in rows if row["round"] == number]
    if not mine:
        return None
    position = {str(record_id): index for index, record_id in enumerate(ids)}
    picked = [probabilities[position[row["id"]], row["label"]] for row in mine]
    return float(-np.log(np.clip(picked, 1e-7, 1)).mean())


def _check(examples, spec: dict, settings: Settings) -> None:
    if "unlabeled" not in examples_io.split_names(examples) or not examples_io.split_size(
            examples, "unlabeled"):
        raise ValueError(f"[train.semi_supervised] needs unlabelled examples, and {examples} "
                         "has no unlabeled split (or an empty one): set [ingest] unlabeled to "
                         "the unlabelled data, or remove [train.semi_supervised].")
    if spec["input_feature"] != "image" and settings.augment != "none":
        raise ValueError(f"[train.semi_supervised] augment = {settings.augment!r} is for "
                         f"images; the examples hold {spec['input_feature']!r}: set "
                         "augment = \"none\".")


def _phases_dir(context, placement) -> pathlib.Path:
    scratch = pathlib.Path(context.scratch_dir)
    folder = (scratch if placement.chief else scratch / placement.role) / "phases"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _history_path(context, placement, phase: str) -> pathlib.Path:
    scratch = pathlib.Path(context.scratch_dir)
    return (scratch if placement.chief else scratch / placement.role) / f"history-{phase}.json"


def _save_weights(model, path: pathlib.Path) -> None:
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.weights.h5")
    model.save_weights(str(temporary))
    os.replace(temporary, path)


def _whole_history(fit, histories: list[dict], context, placement, resumed_from):
    """One Fitted whose history is every phase's epochs end to end."""
    work_dir = pathlib.Path(context.scratch_dir)
    work_dir = work_dir if placement.chief else work_dir / placement.role
    merged: dict[str, list] = {}
    for table in histories:
        per_epoch = fit.history_table(table, len(table))
        for metric in fit.METRICS:
            if metric in per_epoch or metric in merged:
                merged.setdefault(metric, []).extend(per_epoch.get(metric, [None] * len(table)))
    seconds = [epoch["seconds"] for table in histories for epoch in table.values()
               if "seconds" in epoch]
    return fit.Fitted(history=merged, work_dir=work_dir, resumed_from_epoch=resumed_from,
                      mean_epoch_seconds=round(sum(seconds) / len(seconds), 3) if seconds
                      else None)


def _summary(settings: Settings, rounds: list[dict]) -> dict[str, Any]:
    return {**settings.model_dump(exclude={"rounds", "epochs"}),
            "rounds_configured": settings.rounds, "epochs_per_round": settings.epochs,
            "rounds": rounds}


def run_properties(summary: dict[str, Any]) -> dict[str, Any]:
    """The run summary's view of pseudo_labels.json: the settings, and per round the
    pseudo-labels used (per class) and the loss over them, without the histograms."""
    return {"semi_supervised": {key: value for key, value in summary.items() if key != "rounds"},
            "pseudo_labels": [{key: value for key, value in record.items()
                               if key != "confidence_histogram"}
                              for record in summary["rounds"]]}
