"""Runs the DAG: computes each stage's cache key, reuses or runs it, writes the run summary."""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import secrets
import shutil
import time
import traceback
from typing import Any

from pipeline import cache, dag
from pipeline.config import PipelineConfig
from pipeline.stage import Artifact, Context
from pipeline.store import Store

log = logging.getLogger("edgepipe")


class StageFailed(RuntimeError):
    """A stage raised; the run summary has been written and nothing of it was committed."""


def plan(config: PipelineConfig, nodes=dag.CLASSIFICATION):
    """Yields (node, key, key parts, input artifacts, committed record or None) in order.

    Input artifacts of stages not committed yet are placeholders carrying only their key,
    which is all a downstream key needs: keys are known before anything runs.
    """
    store = Store(config.root)
    produced: dict[tuple[str, str], Artifact] = {}
    for node in nodes:
        module = node.module
        inputs = {name: produced[source] for name, source in node.inputs.items()}
        key, parts = cache.stage_key(module, config.stages[node.stage], config.seed, inputs)
        record = store.lookup(node.stage, key)
        for output, kind in module.OUTPUTS.items():
            produced[(node.stage, output)] = Artifact(
                store.stage_dir(node.stage, key) / output, kind, key, {}
            )
        yield node, key, parts, inputs, record


def run(config: PipelineConfig, no_cache: bool = False, nodes=dag.CLASSIFICATION) -> dict[str, Any]:
    """Runs every stage in order; returns the run summary (also written under <root>/runs)."""
    store = Store(config.root)
    _remove_stale_staging(store)
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    summary: dict[str, Any] = {
        "pipeline": config.name,
        "run_id": run_id,
        "config": str(config.path.resolve()),
        "root": str(config.root),
        "status": "running",
        "seconds": 0.0,
        "stages": [],
    }
    started = time.monotonic()
    log.info("run %s of pipeline %r, artifacts under %s", run_id, config.name, config.root)
    stopped_by = None
    total = len(nodes)
    for index, (node, key, parts, inputs, record) in enumerate(plan(config, nodes), start=1):
        entry: dict[str, Any] = {"name": node.stage, "key": key}
        summary["stages"].append(entry)
        if stopped_by:
            entry.update(status="skipped", seconds=0.0, artifacts={}, metrics={})
            continue
        stage_started = time.monotonic()
        inputs = {name: Artifact.load(artifact.path) for name, artifact in inputs.items()}
        if record is not None and not no_cache:
            properties = record["properties"]
            entry["status"] = "cached"
            log.info("[%d/%d] %s: cached (key %s, from run %s)", index, total, node.stage, key, record["run_id"])
        else:
            log.info("[%d/%d] %s: running (key %s)", index, total, node.stage, key)
            context = Context(
                pipeline_name=config.name,
                run_id=run_id,
                seed=config.seed,
                runtime=config.runtime,
                scratch_dir=store.scratch_dir(node.stage, key),
                log=logging.getLogger(f"edgepipe.{node.stage}"),
            )
            try:
                properties, _ = store.execute(
                    node.module, key, inputs, config.stages[node.stage], context,
                    record={"key_parts": parts}, replace=no_cache,
                )
            except SystemExit as error:
                if error.code not in (0, None):
                    raise
                # A non-chief worker of multi-worker training: its share is done and the
                # chief commits the artifact. Stop cleanly; the stages after it are the chief's.
                entry.update(status="worker_finished", seconds=round(time.monotonic() - stage_started, 3),
                             artifacts={}, metrics={})
                summary["stages"] += [
                    {"name": later.stage, "status": "skipped", "seconds": 0.0, "artifacts": {}, "metrics": {}}
                    for later in nodes[index:]
                ]
                summary["status"] = "worker_finished"
                _finish(store, summary, started)
                log.info("[%d/%d] %s: this worker's share is done; the chief commits", index, total, node.stage)
                return summary
            except BaseException as error:
                entry.update(
                    status="failed",
                    seconds=round(time.monotonic() - stage_started, 3),
                    error=f"{type(error).__name__}: {error}",
                    artifacts={},
                    metrics={},
                )
                summary.update(status="failed", failed_stage=node.stage)
                summary["stages"] += [
                    {"name": later.stage, "status": "skipped", "seconds": 0.0, "artifacts": {}, "metrics": {}}
                    for later in nodes[index:]
                ]
                _finish(store, summary, started)
                log.error("[%d/%d] %s failed: %s", index, total, node.stage, error)
                if isinstance(error, Exception):
                    log.debug("%s", traceback.format_exc())
                    raise StageFailed(f"stage {node.stage} failed: {error}") from error
                raise
            entry["status"] = "ran"
            if properties.get("resumed"):  # e.g. training continued from a checkpoint
                entry["resumed"] = True
                summary.setdefault("resumed_stages", []).append(node.stage)
        entry["seconds"] = round(time.monotonic() - stage_started, 3)
        entry["artifacts"] = {
            output: str(store.stage_dir(node.stage, key) / output) for output in node.module.OUTPUTS
        }
        entry["metrics"] = properties
        log.info("[%d/%d] %s: %s in %.1f s", index, total, node.stage, entry["status"], entry["seconds"])
        if properties.get("halt"):
            stopped_by = node.stage
            summary["halted_by"] = node.stage
            log.error("[%d/%d] %s stopped the pipeline:\n%s", index, total, node.stage, properties["halt"])
    summary["status"] = "halted" if stopped_by else "succeeded"
    _finish(store, summary, started)
    log.info("run %s %s in %.1f s", run_id, summary["status"], summary["seconds"])
    return summary


def _finish(store: Store, summary: dict[str, Any], started: float) -> None:
    summary["seconds"] = round(time.monotonic() - started, 3)
    runs = store.root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2) + "\n"
    for name in (f"{summary['run_id']}.json", "latest.json"):
        temporary = runs / f".{name}.tmp"
        temporary.write_text(text)
        os.replace(temporary, runs / name)


def _remove_stale_staging(store: Store) -> None:
    """Staging folders of processes that no longer exist are debris of a crash: remove them."""
    staging = store.root / "staging"
    if not staging.is_dir():
        return
    for folder in staging.iterdir():
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s, left by a run that did not finish", folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
