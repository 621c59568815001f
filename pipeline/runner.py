"""Runs the DAG: plans every stage's cache key, reuses or runs it, writes the run summary.

`plan` computes every key before anything runs (a key depends only on configs, code, data
fingerprints and upstream keys) and checks the wiring; `run` walks the plan, running a stage
whose key has no committed result and reusing one that has. The signals a stage can send
(halt, resumed, WorkerFinished, an exception) are described in pipeline/spec.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import secrets
import time
import traceback
from typing import Any

from edgepipe.pipeline import cache, dag
from edgepipe.pipeline.config import ConfigError, PipelineConfig
from edgepipe.pipeline.spec import StageResult, StageSpec
from edgepipe.pipeline.stage import Artifact, Context, UpstreamStage, WorkerFinished
from edgepipe.pipeline.store import Store

log = logging.getLogger("edgepipe")


class StageFailed(RuntimeError):
    """A stage raised; the run summary has been written and nothing of it was committed."""


class WiringError(ConfigError):
    """The DAG connects an output to an input of another artifact kind (or to nothing)."""


class MissingInput(ConfigError):
    """A stage chosen with --stage reads an artifact that no run has committed yet."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One stage of a plan: its key, its inputs (placeholders carrying their keys until the
    upstream stage has committed), its committed record, if the key has one, and the keys of
    every stage upstream of it (directly or not), in DAG order."""

    node: dag.Node
    spec: StageSpec
    key: str
    parts: dict[str, Any]
    inputs: dict[str, Artifact]
    record: dict[str, Any] | None
    upstream: dict[str, str] = dataclasses.field(default_factory=dict)


def check_wiring(nodes=dag.CLASSIFICATION) -> None:
    """Every node's StageSpec is loaded and checked (dag.Node.spec: SpecError), every input a
    node wires must be one its stage declares (inputs, or optional_inputs), every one of its
    inputs must be wired, each fed by an earlier stage's output of the same artifact kind, and
    an optional stage may feed only optional inputs; raises WiringError naming the stage and
    the input."""
    specs: dict[str, StageSpec] = {}
    for node in nodes:
        spec = node.spec
        declared, optional = dict(spec.inputs), dict(spec.optional_inputs)
        if not set(declared) <= set(node.inputs) <= set(declared) | set(optional):
            raise WiringError(
                f"stage {node.stage!r} declares inputs {sorted(declared)} (optional: "
                f"{sorted(optional)}) but the DAG wires {sorted(node.inputs)}; make "
                f"pipeline/dag.py and {node.module_name}.SPEC agree.")
        kinds = {**optional, **declared}
        for name, (producer, output) in node.inputs.items():
            if producer not in specs:
                raise WiringError(f"stage {node.stage!r} input {name!r} comes from {producer!r}, "
                                  "which is not an earlier stage of the DAG.")
            kind = specs[producer].outputs.get(output)
            if kind != kinds[name]:
                raise WiringError(
                    f"stage {node.stage!r} input {name!r} expects a {kinds[name]} artifact, "
                    f"but {producer}.{output} is {kind or 'not an output'} "
                    f"({producer} writes {dict(specs[producer].outputs)}).")
            if specs[producer].optional and name not in optional:
                raise WiringError(
                    f"stage {node.stage!r} input {name!r} comes from the optional stage "
                    f"{producer!r}, so it must be one of {node.stage}'s optional_inputs.")
        specs[node.stage] = spec


def plan(config: PipelineConfig, nodes=None) -> list[Step]:
    """Every stage's key, inputs and committed record, in DAG order. `nodes` default: the
    stages the config has (dag.active: an optional stage only with its section)."""
    nodes = dag.active(config.stages) if nodes is None else nodes
    check_wiring(nodes)
    store = Store(config.root)
    store.check()  # an unusable root (scheme, credentials, bucket) fails before anything runs
    produced: dict[tuple[str, str], Artifact] = {}
    steps = []
    for node in nodes:
        spec = node.spec
        inputs = {name: produced[source] for name, source in node.inputs.items()}
        key, parts = cache.stage_key(spec, config.stages[node.stage], config.seed, inputs)
        for output, kind in spec.outputs.items():  # on an object store: resolved at run
            produced[(node.stage, output)] = Artifact(store.output_path(node.stage, key, output),
                                                      kind, key, {})
        keys = {step.node.stage: step.key for step in steps}
        steps.append(Step(node, spec, key, parts, inputs, store.lookup(node.stage, key),
                          {name: keys[name] for name in dag.upstream(node.stage, nodes)}))
    return steps


def select(steps: list[Step], stages: list[str] | None, root: Any = "the artifact root"
           ) -> list[Step]:
    """The steps to run: all of them, or exactly the named stages, whose inputs must then be
    committed already or be produced by another named stage (else MissingInput)."""
    if not stages:
        return steps
    known = [step.node.stage for step in steps]
    unknown = [name for name in stages if name not in known]
    if unknown:
        raise ConfigError(f"unknown stage {unknown[0]!r}: this pipeline's stages are "
                          f"{', '.join(known)}.")
    chosen = [step for step in steps if step.node.stage in stages]
    committed = {step.node.stage for step in steps if step.record is not None}
    for step in chosen:
        for name, (producer, _) in step.node.inputs.items():
            if producer not in committed and producer not in stages:
                raise MissingInput(
                    f"stage {step.node.stage!r} reads {name!r} from stage {producer!r}, which "
                    f"has no committed result for key {step.inputs[name].key} under "
                    f"{root}: run --stage {producer} "
                    "first (or the whole pipeline).")
    return chosen


def run(config: PipelineConfig, no_cache: bool = False, nodes=None,
        stages: list[str] | None = None) -> dict[str, Any]:
    """Runs the planned stages in order; returns the run summary (also under <root>/runs)."""
    steps = select(plan(config, nodes), stages, config.root)
    store = Store(config.root)
    for folder in store.remove_stale_staging():
        log.info("removed %s, left by a run that did not finish", folder)
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    summary: dict[str, Any] = {
        "pipeline": config.name, "run_id": run_id, "config": str(config.path.resolve()),
        "root": str(config.root), "status": "running", "seconds": 0.0, "stages": [],
    }
    if stages:
        summary["selected_stages"] = [step.node.stage for step in steps]
    started = time.monotonic()
    failed: BaseException | None = None
    log.info("run %s of pipeline %r, artifacts under %s", run_id, config.name, config.root)
    for index, step in enumerate(steps, start=1):
        position = f"[{index}/{len(steps)}] {step.node.stage}"
        if summary["status"] != "running":
            summary["stages"].append(_skipped(step))
            continue
        entry, failed = _run_step(step, store, config, run_id, no_cache, position)
        summary["stages"].append(entry)
        if entry["status"] in ("failed", "worker_finished"):
            summary["status"] = entry["status"]
            if entry["status"] == "failed":
                summary["failed_stage"] = step.node.stage
        elif entry.get("resumed"):
            summary.setdefault("resumed_stages", []).append(step.node.stage)
        if entry.get("halt"):
            summary.update(status="halted", halted_by=step.node.stage, halt=entry["halt"])
            log.error("%s stopped the pipeline:\n%s", position, entry["halt"])
    if summary["status"] == "running":
        summary["status"] = "succeeded"
    summary["seconds"] = round(time.monotonic() - started, 3)
    store.write_run_summary(summary)
    log.info("run %s %s in %.1f s", run_id, summary["status"], summary["seconds"])
    if failed is not None:
        if not isinstance(failed, Exception):  # KeyboardInterrupt and the like
            raise failed
        raise StageFailed(f"stage {summary['failed_stage']} failed: {failed}") from failed
    return summary


def _run_step(step: Step, store: Store, config: PipelineConfig, run_id: str, no_cache: bool,
              position: str) -> tuple[dict[str, Any], BaseException | None]:
    """Reuse or run one stage; returns its run-summary entry and, when the stage failed, its
    exception (which `run` raises once the summary is written)."""
    entry: dict[str, Any] = {"name": step.node.stage, "key": step.key, "artifacts": {},
                             "metrics": {}}
    started = time.monotonic()
    inputs = {name: _load_input(store, step, name) for name in step.inputs}
    record = store.lookup(step.node.stage, step.key)
    if record is None or no_cache:
        # One live process per key: another run computing it makes this one wait, then
        # reuse its result (see pipeline/store.py).
        owner = f"run {run_id} (pid {os.getpid()})"
        with store.lock(step.node.stage, _lock_key(step, config), owner):
            committed = store.lookup(step.node.stage, step.key)
            if committed is not None and committed["run_id"] != (record or {}).get("run_id"):
                record, no_cache = committed, False  # committed meanwhile by the other run
            if record is None or no_cache:
                return _execute(step, store, config, run_id, no_cache, position, inputs,
                                entry, started)
    entry["status"] = "cached"
    log.info("%s: cached (key %s, from run %s)", position, step.key, record["run_id"])
    paths = store.output_paths(step.node.stage, step.key, record)
    result = StageResult.from_record(record)
    return _finish(entry, dataclasses.replace(result, resumed=False), paths, started,
                   position), None


def _load_input(store: Store, step: Step, name: str) -> Artifact:
    """An input as committed (on an object store its folder is the committed attempt's,
    named by the producing stage's record)."""
    producer, output = step.node.inputs[name]
    return store.artifacts(producer, step.inputs[name].key)[output]


def _execute(step: Step, store: Store, config: PipelineConfig, run_id: str, no_cache: bool,
             position: str, inputs: dict, entry: dict, started: float):
    log.info("%s: running (key %s)", position, step.key)
    context = Context(
        pipeline_name=config.name, run_id=run_id, seed=config.seed, runtime=config.runtime,
        scratch_dir=store.scratch_dir(step.node.stage, step.key),
        log=logging.getLogger(f"edgepipe.{step.node.stage}"),
        upstream=_upstream(step, store, run_id),
    )
    try:
        result, artifacts = store.execute(step.spec, step.key, inputs,
                                      config.stages[step.node.stage], context,
                                      record={"key_parts": step.parts}, replace=no_cache)
    except WorkerFinished as finished:
        log.info("%s: %s", position, finished)
        return {**entry, "status": "worker_finished",
                "seconds": round(time.monotonic() - started, 3)}, None
    except BaseException as error:
        log.error("%s failed: %s", position, error)
        log.debug("%s", traceback.format_exc())
        return {**entry, "status": "failed", "error": f"{type(error).__name__}: {error}",
                "seconds": round(time.monotonic() - started, 3)}, error
    entry["status"] = "ran"
    paths = {name: artifact.path for name, artifact in artifacts.items()}
    return _finish(entry, result, paths, started, position), None


def _upstream(step: Step, store: Store, run_id: str) -> dict[str, UpstreamStage]:
    """What the store's records say of every stage upstream of `step` (committed by this run
    or reused), for the stage's context: a stage never reads the store's manifests itself."""
    records = {name: store.lookup(name, key) for name, key in step.upstream.items()}
    return {name: UpstreamStage.of(record, run_id) for name, record in records.items()
            if record is not None}


def _lock_key(step: Step, config: PipelineConfig) -> str:
    """The workers of one multi-worker cluster run a COLLECTIVE stage together by design
    (they share its scratch folder): each takes its own lock so none waits for another."""
    task = config.runtime.worker_task() if step.spec.collective else ""
    return f"{step.key}-{task}" if task else step.key


def _finish(entry: dict, result: StageResult, paths: dict[str, Any], started: float,
            position: str) -> dict[str, Any]:
    """The run-summary entry: the properties as `metrics`, and the signals beside them (a
    cached result's halt holds again; `resumed` only for a stage this run ran)."""
    entry["seconds"] = round(time.monotonic() - started, 3)
    entry["artifacts"] = {output: str(path) for output, path in paths.items()}
    entry["metrics"] = result.properties
    if result.halt:
        entry["halt"] = result.halt
    if result.resumed:
        entry["resumed"] = True
    log.info("%s: %s in %.1f s", position, entry["status"], entry["seconds"])
    return entry


def _skipped(step: Step) -> dict[str, Any]:
    return {"name": step.node.stage, "key": step.key, "status": "skipped", "seconds": 0.0,
            "artifacts": {}, "metrics": {}}
