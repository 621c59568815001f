"""The stage contract is checked, not duck-typed: every stage declares one StageSpec, a wrong
declaration is an error when the DAG is built, and halt/resumed are returned explicitly."""

from __future__ import annotations

import json
import pathlib
import types

import pytest

from edgepipe.pipeline import dag, runner
from edgepipe.pipeline.spec import SpecError, StageResult, StageSpec, spec_of
from edgepipe.pipeline.stage import StageConfig
from tests.pipeline.fake import doubled
from tests.pipeline.test_runner import NODES, load, statuses


def run(inputs, outputs, config, context):
    return {}


def declare(**fields):
    return StageSpec(**{"name": "probe", "version": 1, "config": StageConfig, "run": run,
                        "outputs": {"probe": "Probe"}, **fields})


def test_every_built_in_stage_declares_one_checked_spec():
    specs = dag.specs()
    assert list(specs) == [node.stage for node in dag.CLASSIFICATION]
    assert specs["train"].collective and specs["ingest"].remote_io and specs["tune"].optional
    assert specs["tune"].reads == ("train",) and specs["train"].code == ("edgepipe.models",)
    runner.check_wiring(dag.CLASSIFICATION)


def test_a_misspelt_flag_is_an_error():
    with pytest.raises(TypeError, match="colective"):
        declare(colective=True)


@pytest.mark.parametrize("fields, message", [
    ({"collective": "yes"}, "collective must be True or False"),
    ({"version": 0}, "version 0 is not a positive int"),
    ({"config": dict}, "is not a StageConfig subclass"),
    ({"run": lambda inputs, outputs: {}}, "run must be a function of 4 arguments"),
    ({"fingerprint": lambda config: ""}, "fingerprint must be a function of 2 arguments"),
    ({"inputs": {"examples": ""}}, "inputs['examples'] = ''"),
    ({"outputs": {}}, "outputs is empty"),
    ({"inputs": {"a": "A"}, "optional_inputs": {"a": "A"}}, "are both inputs and optional"),
    ({"reads": ("train",)}, "reads ['train'], but its Config has no field of that name"),
    ({"code": "edgepipe.models"}, "code must be a tuple of names"),
])
def test_a_wrong_value_names_the_stage_and_the_field(fields, message):
    with pytest.raises(SpecError, match=f"stage 'probe' declares its StageSpec wrongly: .*"
                                        f"{message.replace('[', '.').replace(']', '.')}"):
        declare(**fields)


def test_a_module_with_a_retired_flag_beside_its_spec_or_without_spec_is_refused():
    module = types.ModuleType("stale_stage")
    with pytest.raises(SpecError, match="stale_stage has no SPEC = StageSpec"):
        spec_of(module)
    module.SPEC, module.COLLECTIVE = declare(), True
    with pytest.raises(SpecError, match=r"declares \['COLLECTIVE'\] beside its SPEC.*collective"):
        spec_of(module)


def test_a_spec_cannot_be_changed_after_its_declaration():
    spec = declare(inputs={"a": "A"})
    with pytest.raises(TypeError):
        spec.inputs["b"] = "B"  # read-only mapping
    with pytest.raises(AttributeError):
        spec.version = 2  # frozen


def test_halt_and_resumed_are_returned_not_properties(tmp_path, monkeypatch):
    assert StageResult.of({"sum": 1}, "probe") == StageResult({"sum": 1})
    with pytest.raises(TypeError, match=r"returned \['halt'\] among its properties: return "
                                        "StageResult"):
        StageResult.of({"halt": "stop"}, "probe")
    with pytest.raises(TypeError, match="returned list"):
        StageResult.of([1], "probe")

    original = doubled.run

    def resuming(inputs, outputs, config, context):
        return StageResult(original(inputs, outputs, config, context).properties, resumed=True)

    monkeypatch.setattr(doubled, "SPEC", declare(
        name="doubled", config=doubled.Config, run=resuming, inputs={"numbers": "Numbers"},
        outputs={"doubled": "Numbers"}))
    summary = runner.run(load(tmp_path), nodes=NODES)
    assert statuses(summary) == {"numbers": "ran", "doubled": "ran", "total": "ran"}
    assert summary["resumed_stages"] == ["doubled"] and summary["stages"][1]["resumed"]
    assert "resumed" not in summary["stages"][1]["metrics"]
    record = json.loads(next((tmp_path / "artifacts" / "doubled").glob("*/manifest.json"))
                        .read_text())
    assert record["resumed"] is True and record["halt"] == ""
    # total learns it from its context, in DAG order, with what ran in this run
    total = json.loads(pathlib.Path(summary["stages"][2]["artifacts"]["total"], "upstream.json")
                       .read_text())
    assert total == [["numbers", summary["stages"][0]["key"], False, False],
                     ["doubled", summary["stages"][1]["key"], False, True]]
    again = runner.run(load(tmp_path), nodes=NODES)  # reused: it did not resume in this run
    assert "resumed_stages" not in again and "resumed" not in again["stages"][1]
    rerun = runner.run(load(tmp_path), nodes=NODES, stages=["total"], no_cache=True)
    total = json.loads(pathlib.Path(rerun["stages"][0]["artifacts"]["total"], "upstream.json")
                       .read_text())
    assert [row[2:] for row in total] == [[True, False], [True, True]]  # reused, resumed then
