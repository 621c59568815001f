"""The runner and the store on three tiny stages (tests/pipeline/fake): every status a stage can
end with, a stage killed mid-run, a wiring mistake, and running chosen stages only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edgepipe.pipeline import config as config_module
from edgepipe.pipeline import runner
from edgepipe.pipeline.dag import Node
from edgepipe.pipeline.spec import SpecError
from edgepipe.pipeline.store import Store
from tests.conftest import REPO

NODES = (
    Node("numbers", "tests.pipeline.fake.numbers", {}),
    Node("doubled", "tests.pipeline.fake.doubled", {"numbers": ("numbers", "numbers")}),
    Node("total", "tests.pipeline.fake.total", {"numbers": ("doubled", "doubled")}),
)


def load(root, **doubled) -> config_module.PipelineConfig:
    specs = {node.stage: node.spec for node in NODES}
    data = {"pipeline": {"name": "fake", "root": str(root)}, "doubled": doubled}
    return config_module.load(data, specs)


def statuses(summary: dict) -> dict[str, str]:
    return {stage["name"]: stage["status"] for stage in summary["stages"]}


def test_ran_then_cached_then_only_the_changed_stage_and_after(tmp_path):
    first = runner.run(load(tmp_path), nodes=NODES)
    assert first["status"] == "succeeded"
    assert statuses(first) == {"numbers": "ran", "doubled": "ran", "total": "ran"}
    assert first["stages"][2]["metrics"] == {"total": 12}
    assert statuses(runner.run(load(tmp_path), nodes=NODES)) == dict.fromkeys(
        ("numbers", "doubled", "total"), "cached")
    changed = runner.run(load(tmp_path, factor=3), nodes=NODES)
    assert statuses(changed) == {"numbers": "cached", "doubled": "ran", "total": "ran"}
    assert changed["stages"][2]["metrics"] == {"total": 18}
    latest = json.loads((tmp_path / "runs" / "latest.json").read_text())
    assert latest == changed


def test_a_failed_stage_commits_nothing_and_skips_the_rest(tmp_path):
    config = load(tmp_path, fail=True)
    with pytest.raises(runner.StageFailed, match="doubled was told to fail"):
        runner.run(config, nodes=NODES)
    summary = json.loads((tmp_path / "runs" / "latest.json").read_text())
    assert summary["status"] == "failed" and summary["failed_stage"] == "doubled"
    assert statuses(summary) == {"numbers": "ran", "doubled": "failed", "total": "skipped"}
    assert "ValueError: doubled was told to fail" in summary["stages"][1]["error"]
    assert not (tmp_path / "artifacts" / "doubled").exists()
    assert not list((tmp_path / "staging").iterdir())


def test_a_halting_gate_commits_its_artifact_and_stops_the_run(tmp_path):
    summary = runner.run(load(tmp_path, halt="the numbers look wrong"), nodes=NODES)
    assert summary["status"] == "halted" and summary["halted_by"] == "doubled"
    assert statuses(summary) == {"numbers": "ran", "doubled": "ran", "total": "skipped"}
    assert summary["halt"] == summary["stages"][1]["halt"] == "the numbers look wrong"
    assert summary["stages"][1]["metrics"] == {"sum": 12}  # a signal, not a metric
    doubled = Store(tmp_path).lookup("doubled", summary["stages"][1]["key"])
    assert doubled is not None  # the gate's own verdict is kept


KILLED = """
import sys
from tests.pipeline.test_runner import NODES, load
from edgepipe.pipeline import runner
runner.run(load(sys.argv[1], sleep_seconds=60), nodes=NODES)
"""


def test_a_killed_stage_leaves_nothing_a_later_run_trusts(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path)], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("staging/doubled-*/doubled/started")):
        assert process.poll() is None and time.monotonic() < deadline, "doubled never started"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    key = next(step.key for step in runner.plan(load(tmp_path), NODES)
               if step.node.stage == "doubled")
    assert Store(tmp_path).lookup("doubled", key) is None  # half-written output is invisible
    summary = runner.run(load(tmp_path), nodes=NODES)
    assert statuses(summary) == {"numbers": "cached", "doubled": "ran", "total": "ran"}
    assert not list((tmp_path / "staging").iterdir())  # the debris was removed


def test_a_wiring_mistake_is_an_error_before_anything_runs(tmp_path):
    wrong = (*NODES[:2], Node("total", "tests.pipeline.fake.total",
                              {"numbers": ("numbers", "missing_output")}))
    with pytest.raises(runner.WiringError, match="'total' input 'numbers' expects a Numbers "
                                                 "artifact, but numbers.missing_output is not "
                                                 "an output"):
        runner.run(load(tmp_path), nodes=wrong)
    mismatched = (NODES[0], Node(
        "total", "tests.pipeline.fake.total", {"numbers": ("numbers", "numbers")}),
        Node("doubled", "tests.pipeline.fake.doubled", {"numbers": ("total", "total")}))
    with pytest.raises(runner.WiringError, match="expects a Numbers artifact, but total.total "
                                                 "is Total"):
        runner.run(load(tmp_path), nodes=mismatched)
    renamed = (NODES[0], Node("doubled", "tests.pipeline.fake.total",
                              {"numbers": ("numbers", "numbers")}))
    with pytest.raises(SpecError, match="fake.total.SPEC is named 'total', but the DAG runs it "
                                        "as stage 'doubled'"):
        runner.run(load(tmp_path), nodes=renamed)
    assert not tmp_path.joinpath("artifacts").exists()


def test_chosen_stages_run_from_committed_inputs_only(tmp_path):
    with pytest.raises(runner.MissingInput, match="reads 'numbers' from stage 'numbers'.*run "
                                                  "--stage numbers first"):
        runner.run(load(tmp_path), nodes=NODES, stages=["doubled"])
    assert statuses(runner.run(load(tmp_path), nodes=NODES, stages=["numbers"])) == {
        "numbers": "ran"}
    summary = runner.run(load(tmp_path), nodes=NODES, stages=["doubled", "total"])
    assert statuses(summary) == {"doubled": "ran", "total": "ran"}
    assert summary["selected_stages"] == ["doubled", "total"]
    assert statuses(runner.run(load(tmp_path), nodes=NODES, stages=["total"])) == {
        "total": "cached"}
    with pytest.raises(config_module.ConfigError, match="unknown stage 'trian'"):
        runner.run(load(tmp_path), nodes=NODES, stages=["trian"])
