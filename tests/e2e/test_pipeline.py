"""The whole pipeline through the `edgepipe` command, on a tiny real sample.

Covers what a user relies on: one command runs every stage, a second run reuses everything,
a config change re-runs only the stages downstream of it, a failing or killed stage leaves
nothing a later run would trust, and the run summary has the documented fields.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import signal
import subprocess
import sys

import pytest

from edgepipe import cli
from tests.conftest import REPO
from tests.e2e.conftest import latest_summary, run_cli

STAGES = ["ingest", "statistics", "train", "evaluate", "quantize", "report", "push"]


def statuses(summary: dict) -> dict[str, str]:
    return {stage["name"]: stage["status"] for stage in summary["stages"]}


def test_first_run_runs_every_stage_and_writes_summary(first_run, tiny_config):
    assert first_run["status"] == "succeeded"
    assert statuses(first_run) == {name: "ran" for name in STAGES}
    assert first_run["pipeline"] == "quickstart"
    assert first_run["seconds"] > 0
    runs = pathlib.Path(first_run["root"]) / "runs"
    assert json.loads((runs / f"{first_run['run_id']}.json").read_text()) == first_run
    for stage in first_run["stages"]:
        assert set(stage) >= {"name", "status", "seconds", "artifacts", "metrics"}
        for path in stage["artifacts"].values():
            assert (pathlib.Path(path) / "manifest.json").is_file()
    metrics = {stage["name"]: stage["metrics"] for stage in first_run["stages"]}
    assert 0.3 <= metrics["evaluate"]["accuracy"] <= 1.0
    variants = {variant["name"] for variant in metrics["quantize"]["variants"]}
    assert variants == {"float32", "dynamic_range", "float16", "int8"}
    tflite_dir = pathlib.Path(first_run["stages"][4]["artifacts"]["tflite"])
    for variant in json.loads((tflite_dir / "variants.json").read_text()):
        assert set(variant) >= {"name", "path", "size_bytes", "accuracy", "agreement", "latency_ms_p50", "ops"}
        assert (tflite_dir / variant["path"]).stat().st_size == variant["size_bytes"]
    report_dir = pathlib.Path(first_run["stages"][5]["artifacts"]["report"])
    assert (report_dir / "report.html").stat().st_size > 10_000


def test_second_run_is_fully_cached(first_run, tiny_config):
    second = run_cli("run", str(tiny_config))
    assert statuses(second) == {name: "cached" for name in STAGES}
    for before, after in zip(first_run["stages"], second["stages"]):
        assert before["artifacts"] == after["artifacts"]
        assert before["metrics"] == after["metrics"]


def test_config_change_reruns_only_downstream(first_run, tiny_config):
    changed = run_cli("run", str(tiny_config), "--set", "evaluate.min_accuracy=0.99")
    assert statuses(changed) == {
        "ingest": "cached", "statistics": "cached", "train": "cached",
        "evaluate": "ran", "quantize": "cached", "report": "ran", "push": "ran",
    }
    evaluate = changed["stages"][3]["metrics"]
    assert evaluate["blessed"] is False
    # The Beam runner is a runtime setting: it changes where work runs, not the result.
    same = run_cli("run", str(tiny_config), "--beam-option", "direct_num_workers=2")
    assert statuses(same) == {name: "cached" for name in STAGES}


def test_status_and_inspect(first_run, tiny_config, capsys):
    assert cli.main(["status", str(tiny_config)]) == 0
    out = capsys.readouterr().out
    for name in STAGES:
        assert f"{name:<11} committed" in out
    model_dir = first_run["stages"][2]["artifacts"]["model"]
    assert cli.main(["inspect", model_dir]) == 0
    out = capsys.readouterr().out
    assert "Model artifact, output 'model' of stage 'train'" in out
    assert "saved_model/saved_model.pb" in out


def test_failed_stage_commits_nothing(first_run, tiny_config, monkeypatch):
    from edgepipe.components.quantize import stage as quantize

    def broken_run(inputs, outputs, config, context):
        (outputs["tflite"] / "half-written.tflite").write_bytes(b"partial")
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(quantize, "SPEC", dataclasses.replace(quantize.SPEC, run=broken_run))
    # A new quantize key; one variant, because the test is about the failure, not the variants.
    args = ["run", str(tiny_config), "--set", "quantize.representative_examples=21",
            "--set", 'quantize.variants=["float32"]']
    assert cli.main(args) == 1
    failed = latest_summary(str(tiny_config))
    assert failed["status"] == "failed"
    assert statuses(failed)["quantize"] == "failed"
    assert statuses(failed)["report"] == "skipped"
    assert "converter exploded" in failed["stages"][4]["error"]
    root = pathlib.Path(failed["root"])
    key = failed["stages"][4]["key"]
    assert not (root / "artifacts" / "quantize" / key).exists()
    assert not list((root / "staging").glob("quantize-*"))
    monkeypatch.undo()
    fixed = run_cli(*args)
    assert statuses(fixed)["quantize"] == "ran"
    assert statuses(fixed)["train"] == "cached"


def test_killed_stage_leaves_nothing_trusted(first_run, tiny_config):
    """SIGKILL mid-training: no Model artifact for that key; the next run trains again."""
    args = [sys.executable, "-m", "edgepipe", "run", str(tiny_config), "--set", "train.epochs=30"]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, cwd=REPO)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "train: epoch 1/30" in line or "epoch 1/30" in line:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert any("epoch 1/30" in line for line in seen), "".join(seen)
    summary_before = latest_summary(str(tiny_config))
    root = pathlib.Path(summary_before["root"])
    staging = list((root / "staging").glob("train-*"))
    assert staging, "a killed run leaves its staging folder (debris, never read)"
    key = staging[0].name.split("-")[1]
    assert not (root / "artifacts" / "train" / key).exists()
    # The next run removes the debris and trains again instead of trusting it (only train: the
    # stages after it are not what this test is about).
    again = run_cli("run", str(tiny_config), "--set", "train.epochs=2", "--stage", "train")
    assert statuses(again)["train"] == "ran"
    assert not list((root / "staging").glob("train-*"))


def test_the_relative_gate_blocks_a_worse_model_of_the_shipped_config(first_run, tiny_config):
    """The shipped config's [registry] turns the relative gate on: after a pushed model, one
    that still passes the absolute threshold but is clearly worse is NOT_BLESSED and not
    pushed, and the report says which gate decided."""
    assert first_run["stages"][6]["metrics"]["pushed"] is True
    first_gate = first_run["stages"][3]["metrics"]["reason"]
    report = pathlib.Path(first_run["stages"][5]["artifacts"]["report"]) / "report.html"
    assert "no earlier version of &#39;quickstart&#39;" in report.read_text()
    assert "threshold" in first_gate
    registry = pathlib.Path(first_run["stages"][6]["metrics"]["registry"]) / "quickstart"
    versions = sorted(path.name for path in registry.iterdir() if path.name.isdigit())
    worse = run_cli_status("run", str(tiny_config), "--set", "train.learning_rate=1e-7",
                           "--set", "evaluate.min_accuracy=0.0",
                           "--set", 'quantize.variants=["float32"]')  # not under test here
    evaluate, push = worse["stages"][3]["metrics"], worse["stages"][6]["metrics"]
    newest = f"quickstart v{versions[-1]}"
    assert evaluate["blessed"] is False and f"points below {newest}" in evaluate["reason"]
    assert push["pushed"] is False and "not blessed" in push["reason"]
    assert sorted(path.name for path in registry.iterdir() if path.name.isdigit()) == versions
    html = (pathlib.Path(worse["stages"][5]["artifacts"]["report"]) / "report.html").read_text()
    assert 'data-gate="relative"' in html and f"points below {newest}" in html


def run_cli_status(*args: str) -> dict:
    """Run the command whatever its exit status (a NOT_BLESSED run still succeeds)."""
    from edgepipe import cli

    cli.main(list(args))
    return latest_summary(args[1])
