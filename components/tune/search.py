"""The search itself, on Optuna: a seeded TPE sampler, a median pruner, and a journal file in
the stage's scratch folder so that a killed search resumes without repeating finished trials.

The study lives in `<scratch>/optuna.journal` (Optuna's JournalFileBackend: an append-only
log, safe to kill at any point). On a re-run with the same cache key the study is loaded:
finished trials (complete, pruned, or diverged) count against the budget and stay in the
result; a trial that was running when the process died is marked failed and run again as a
new trial. The sampler is seeded with the pipeline seed (plus the number of trials already in
the study, so a resumed search does not redraw the first trials' values).
"""

from __future__ import annotations

import logging
import math
import pathlib
from typing import Any, Callable

from edgepipe.components.tune import space as space_module

STUDY = "tune"
JOURNAL = "optuna.journal"


def _study(optuna, scratch_dir: pathlib.Path, direction: str, seed: int, trials: int,
           first: dict[str, Any]):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    scratch_dir.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(scratch_dir / JOURNAL)))
    study = optuna.create_study(study_name=STUDY, storage=storage, direction=direction,
                                load_if_exists=True)
    resumed = bool(study.trials)
    if not resumed and first:  # the config's own values are the first trial
        study.enqueue_trial(first, skip_if_exists=True)
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.RUNNING:  # its process was killed
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    # Random draws for the first third of the budget (at least 2, at most 10), then TPE.
    study.sampler = optuna.samplers.TPESampler(
        seed=seed + len(study.trials), n_startup_trials=max(2, min(10, trials // 3)))
    # A trial worse than the median of earlier ones at the same epoch stops there; never
    # within its first epoch, nor before two trials have finished.
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return study, resumed


def _finished(optuna, trial) -> bool:
    """Ran to its end, was pruned, or diverged: it counts against the budget (a trial killed
    with its process has no "seconds" and is run again)."""
    states = optuna.trial.TrialState
    return trial.state in (states.COMPLETE, states.PRUNED) or (
        trial.state == states.FAIL and "seconds" in trial.user_attrs)


def search(config, objective: Callable[[dict[str, Any], Callable], Any],
           scratch_dir: pathlib.Path, seed: int, log: logging.Logger) -> dict[str, Any]:
    """Run trials until `config.trials` have finished or `config.minutes` of trial time are
    spent; returns the tuning.json content. `objective(params, report)` trains one trial.
    The first trial is [train]'s own values where the space holds them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if config.metric == "val_accuracy" else "minimize"
    study, resumed = _study(optuna, pathlib.Path(scratch_dir), direction, seed, config.trials,
                            space_module.defaults(config.space, config.train))
    done = [trial for trial in study.trials if _finished(optuna, trial)]
    if resumed:
        log.info("resuming the search: %d of %d trials already finished", len(done),
                 config.trials)
    budget = None if config.minutes is None else config.minutes * 60.0
    spent = sum(trial.user_attrs.get("seconds", 0.0) for trial in done)
    while len(done) < config.trials and (budget is None or spent < budget):
        trial = study.ask()
        params = space_module.suggest(trial, config.space)

        def report(value: float, epoch: int, trial=trial) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        outcome = objective(params, report)
        _tell(optuna, study, trial, outcome)
        spent += outcome.seconds
        done.append(study.trials[trial.number])
        log.info("trial %d/%d %s: %s %s (%.1f s) %s", len(done), config.trials,
                 study.trials[trial.number].state.name.lower(), config.metric,
                 _format(outcome.values[-1] if outcome.values else None), outcome.seconds,
                 params)
    if budget is not None and spent >= budget and len(done) < config.trials:
        log.info("time budget of %g minutes spent after %d trials", config.minutes, len(done))
    return result(optuna, study, config, resumed)


def _tell(optuna, study, trial, outcome) -> None:
    trial.set_user_attr("seconds", outcome.seconds)
    trial.set_user_attr("val_accuracy", outcome.val_accuracy)
    trial.set_user_attr("values", outcome.values)
    states = optuna.trial.TrialState
    if outcome.failed:
        study.tell(trial, state=states.FAIL)
    elif outcome.pruned:
        study.tell(trial, state=states.PRUNED)
    else:
        study.tell(trial, outcome.values[-1])


def _format(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def result(optuna, study, config, resumed: bool) -> dict[str, Any]:
    """tuning.json: every finished trial and the best one."""
    records = [_record(trial, config.space) for trial in study.trials
               if _finished(optuna, trial)]
    complete = [trial for trial in study.trials
                if trial.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(
            f"the search finished no trial: {len(records)} trial(s) were pruned or diverged "
            "(NaN loss). Narrow [tune.space] (e.g. lower learning rates) or raise [tune] "
            "trials / minutes.")
    best = study.best_trial
    return {
        "metric": config.metric, "direction": study.direction.name.lower(),
        "space": config.space, "budget": {"trials": config.trials, "minutes": config.minutes},
        "trials": records, "best_trial": best.number,
        "best_params": space_module.decode(best.params, config.space),
        "best_value": best.value, "resumed": resumed,
    }


def _finite(values: list) -> list:
    """JSON has no NaN: a diverged epoch's value is null."""
    return [value if value is not None and math.isfinite(value) else None for value in values]


def _record(trial, space: dict[str, Any]) -> dict[str, Any]:
    accuracy = _finite(trial.user_attrs.get("val_accuracy") or [None])
    values = _finite(trial.user_attrs.get("values") or [])
    return {
        "number": trial.number, "params": space_module.decode(trial.params, space),
        "value": trial.value if trial.value is not None else (values or [None])[-1],
        "val_accuracy": accuracy[-1], "values": values, "epochs": len(values),
        "seconds": trial.user_attrs.get("seconds"), "state": trial.state.name.lower(),
        "pruned": trial.state.name == "PRUNED",
    }
