"""The compiled pipeline, run end to end by KFP's own local execution (kfp.local,
SubprocessRunner: each task a process of this venv, no Docker), on the tiny quickstart: each
task runs its stage as `edgepipe run --stage` would, and every stage gets the same cache key
and the same metrics (measured durations aside) as the `edgepipe run` of the same config
(first_run). Behind the slow marker: seven task processes, each importing TensorFlow, take
4-5 minutes here; benchmarks/kfp_local.py measures it against `edgepipe run`."""

from __future__ import annotations

import re
import time

import pytest
import yaml

from edgepipe import cli
from edgepipe.pipeline import dag
from edgepipe.pipeline.store import Store

# The quickstart has no [tune] section: its pipeline is the DAG without the optional stage.
ACTIVE = dag.active({node.stage for node in dag.CLASSIFICATION} - {"tune"})
STAGES = [node.stage for node in ACTIVE]
# Measured durations and throughputs (images_per_second), and the report's size (it names its
# run's folders), differ between runs.
TIMING = re.compile(r"seconds|per_second|latency|_ms(_|$)|^report_bytes$")


def without_timings(value):
    """The metrics with every measured duration left out."""
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items()
                if not TIMING.search(key)}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def same_metrics(stage: str, got: dict, wanted: dict) -> bool:
    """The metrics of a stage's second computation (kfp.local) agree with the first's (edgepipe
    run): equal but for measured durations; push found the same model in the same registry
    (created False, with its own reason) under the same version."""
    got, wanted = without_timings(got), without_timings(wanted)
    if stage == "push":
        if (got.pop("created"), wanted.pop("created")) != (False, True):
            return False
        got.pop("reason"), wanted.pop("reason")
    return got == wanted


def test_compiled_spec_has_one_task_per_stage_wired_as_the_dag(tiny_config, tmp_path):
    from kfp import components

    output = tmp_path / "pipeline.yaml"
    assert cli.main(["compile", str(tiny_config), "--target", "kfp", "-o", str(output)]) == 0
    loaded = components.load_component_from_file(str(output))
    tasks = loaded.pipeline_spec.root.dag.tasks
    assert sorted(tasks) == sorted(STAGES)
    for node in ACTIVE:
        assert sorted(tasks[node.stage].dependent_tasks) == sorted(
            {producer for producer, _ in node.inputs.values()})
    spec = yaml.safe_load(output.read_text())
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor["container"]
        assert container["image"] == "edgepipe:latest"
        assert "pip install" not in " ".join(container["command"])  # the image holds kfp


@pytest.mark.slow  # 4-5 min on 2 loaded cores: benchmarks/kfp_local.py measures it
def test_the_compiled_quickstart_runs_under_kfp_local_like_edgepipe_run(
        tiny_config, first_run, tmp_path):
    from kfp import components, local

    output = tmp_path / "pipeline.yaml"
    assert cli.main(["compile", str(tiny_config), "-o", str(output)]) == 0
    pipeline = components.load_component_from_file(str(output))
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(tmp_path / "kfp-outputs"))
    root = tmp_path / "root"  # a new root: every stage runs again, in its own task process
    started = time.monotonic()
    pipeline(root=str(root), config_dir=str(tiny_config.parent))
    print(f"kfp.local ran the 7 tasks in {time.monotonic() - started:.1f} s")
    store = Store(root)
    expected = {stage["name"]: stage for stage in first_run["stages"]}
    for name in STAGES:
        record = store.lookup(name, expected[name]["key"])
        assert record is not None, f"{name}: no result under the key edgepipe run gave it"
        assert same_metrics(name, record["properties"], expected[name]["metrics"]), name
