"""The report's hyperparameter-search section (only with a tune stage): every trial with its
parameters, validation accuracy, time and whether it was pruned, the best parameters the
train stage used, and a plot of validation accuracy over the trials."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.components.report import plots
from edgepipe.contracts import artifacts


def section(tuning_dir: pathlib.Path) -> dict[str, Any]:
    tuning = artifacts.read_tuning(tuning_dir)
    keys = sorted(tuning.get("space") or {key for trial in tuning["trials"]
                                          for key in trial["params"]})
    rows = [{
        "number": trial["number"],
        "params": [_format(trial["params"].get(key)) for key in keys],
        "val_accuracy": trial["val_accuracy"],
        "value": trial["value"],
        "seconds": trial["seconds"] or 0.0,
        "epochs": trial.get("epochs"),
        "state": trial["state"],
        "best": trial["number"] == tuning.get("best_trial"),
    } for trial in tuning["trials"]]
    return {
        "metric": tuning["metric"],
        "columns": keys,
        "trials": rows,
        "pruned": sum(trial["pruned"] for trial in tuning["trials"]),
        "best_trial": tuning.get("best_trial"),
        "best_params": tuning["best_params"],
        "best_params_text": {key: _format(value) for key, value in tuning["best_params"].items()},
        "best_value": tuning["best_value"],
        "epochs_per_trial": tuning.get("epochs_per_trial"),
        "seconds": round(sum(row["seconds"] for row in rows), 1),
        "figure": trials_figure(tuning["trials"], tuning.get("best_trial")),
    }


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def trials_figure(trials: list[dict[str, Any]], best: int | None) -> str:
    """Validation accuracy of each trial in the order they ran (pruned ones hollow), and the
    best so far."""
    figure = plots._new_figure(8, 3.2)
    axes = figure.add_subplot()
    done = [trial for trial in trials if trial["val_accuracy"] is not None]
    for pruned, style in ((False, {"color": "#1f77b4"}),
                          (True, {"facecolors": "none", "edgecolors": "#7f7f7f"})):
        chosen = [trial for trial in done if trial["pruned"] == pruned]
        axes.scatter([trial["number"] for trial in chosen],
                     [trial["val_accuracy"] for trial in chosen], s=30,
                     label="pruned" if pruned else "complete", **style)
    complete = sorted((trial for trial in done if not trial["pruned"]),
                      key=lambda trial: trial["number"])
    running, steps = None, []
    for trial in complete:
        running = trial["val_accuracy"] if running is None else max(running, trial["val_accuracy"])
        steps.append((trial["number"], running))
    if steps:
        last = max(trial["number"] for trial in trials)
        steps.append((last, steps[-1][1]))  # the best so far holds to the last trial
        axes.step(*zip(*steps), where="post", color="#2ca02c", label="best so far")
    for trial in done:
        if trial["number"] == best:
            axes.scatter([best], [trial["val_accuracy"]], s=120, marker="*",
                         color="#d62728", label="chosen", zorder=3)
    axes.set_xlabel("trial")
    axes.set_ylabel("validation accuracy")
    axes.grid(alpha=0.3)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(frameon=False, fontsize=8)
    return plots._to_base64_png(figure)
