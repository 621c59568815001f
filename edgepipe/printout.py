"""What `edgepipe run` prints after a run: one line per stage of the DAG, then what each stage
has to say about its result (the task's metrics, the variants, where the report is)."""

from __future__ import annotations

from edgepipe.contracts import artifacts, tasks
from edgepipe.pipeline import dag


def print_summary(summary: dict) -> None:
    """One line per stage of the run (in DAG order, as the summary lists them), then the
    lines each stage has to say about its result (STAGE_LINES)."""
    print(f"\nrun {summary['run_id']}: {summary['status']} in {summary['seconds']:.1f} s")
    for stage in summary["stages"]:
        print(f"  {stage['name']:<{WIDTH}} {stage['status']:<8} {stage.get('seconds', 0):7.1f} s")
    for stage in summary["stages"]:
        lines = STAGE_LINES.get(stage["name"])
        if lines is not None:
            for line in lines(stage.get("metrics", {}), stage):
                print(line)
    print(f"summary: {summary['root']}/runs/latest.json")


def _tune_lines(metrics: dict, stage: dict) -> list[str]:
    return [f"\n{tuning_line(metrics)}"] if "best_params" in metrics else []


def _scores(record: dict) -> str:
    """The task's metrics found in a record (evaluate's properties, a quantize variant)."""
    # The task whose primary metric is there and most of whose metrics are (forecasting's
    # records hold regression's MAE too).
    found = [task for task in tasks.TASKS.values() if task.primary.name in record]
    if not found:
        return ""
    task = max(found, key=lambda task: sum(metric.name in record for metric in task.metrics))
    return "  ".join(
        f"{metric.name} {record[metric.name]:{'.4f' if metric is tasks.ACCURACY else '.4g'}}"
        for metric in task.metrics if metric.name in record)


def _evaluate_lines(metrics: dict, stage: dict) -> list[str]:
    if not _scores(metrics):
        return []
    verdict = "BLESSED" if metrics.get("blessed") else "NOT BLESSED"
    return [f"\ntest {_scores(metrics)}: {verdict} ({metrics.get('reason', '')})"]


def _quantize_lines(metrics: dict, stage: dict) -> list[str]:
    lines = [f"  {variant['name']:<14} {variant['size_bytes'] / 1024:8.1f} KB"
             f"  {_scores(variant)}  p50 {variant['latency_ms_p50']:.3f} ms"
             f"{_variant_seconds(variant.get('seconds'))}"
             for variant in metrics.get("variants", [])]
    if metrics.get("deployable"):
        deployable = metrics["deployable"]
        lines.append(f"  deployable: {deployable.get('variant')} ({deployable.get('reason', '')})")
    return lines


def _push_lines(metrics: dict, stage: dict) -> list[str]:
    return [f"\npush: {metrics.get('reason') or metrics}"] if metrics else []


def _report_lines(metrics: dict, stage: dict) -> list[str]:
    if not stage.get("artifacts"):
        return []
    return [f"\nreport: {stage['artifacts']['report']}/{artifacts.REPORT_HTML}"]


def _train_lines(metrics: dict, stage: dict) -> list[str]:
    """The precision "auto" picked (or the config set) and the time budget, if any."""
    choice, budget = metrics.get("precision"), metrics.get("budget")
    if not isinstance(choice, dict):
        return []
    lines = [f"\ntrain: precision {choice['precision']} ({choice['requested']}: "
             f"{choice['reason']})"]
    if budget:
        lines.append(f"  time budget {budget['max_minutes']:g} min: {budget['epochs_run']} of "
                     f"{budget['epochs_configured']} epochs in {budget['training_minutes']} min; "
                     f"all {budget['epochs_configured']} would have taken about "
                     f"{budget['full_run_minutes_estimate']} min")
    return lines


# What a stage of the DAG (pipeline/dag.py) prints below the table; tests/pipeline/test_cli.py
# checks that every name here is a stage of the DAG.
STAGE_LINES = {"tune": _tune_lines, "train": _train_lines, "evaluate": _evaluate_lines,
               "quantize": _quantize_lines, "push": _push_lines, "report": _report_lines}
WIDTH = max(len(node.stage) for node in dag.CLASSIFICATION) + 1  # the stage column


def _variant_seconds(seconds: dict | None) -> str:
    """A quantize variant's time split, as the run summary records it."""
    if not seconds:
        return ""
    return (f"  s: fine-tune {seconds.get('fine_tune', 0):.1f} convert "
            f"{seconds.get('convert', 0):.1f} measure {seconds.get('measure', 0):.1f}")


def tuning_line(metrics: dict) -> str:
    """The tune stage's result in one line: trials, best value, best parameters."""
    params = ", ".join(f"{key}={value}" for key, value in metrics["best_params"].items())
    return (f"tune: {metrics['trials']} trials ({metrics.get('pruned', 0)} pruned), best "
            f"{metrics.get('metric', 'value')} {metrics['best_value']:.4f} (trial "
            f"{metrics.get('best_trial')}): {params}")
