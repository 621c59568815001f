"""What one task of a compiled Kubeflow / Vertex AI pipeline runs: exactly one stage, as
`edgepipe run CONFIG --root ROOT --stage NAME` would, from the config embedded in the pipeline.

The task loads the embedded config (the TOML file's tables as one line of JSON: KFP writes
parameter defaults into a YAML comment, where a line break would end it) with its relative paths resolved against `config_dir`
(in the project's image: /opt/edgepipe/configs, so ../data/... is the image's data/), checks
that the keys its upstream tasks returned are the keys this config gives them (else the tasks
ran different configs or code: a mixed-up image), runs the stage through the runner and the
store (committed inputs only; cached when its key is committed) and returns the stage's key.

A task on a Vertex AI multi-replica custom job gets CLUSTER_SPEC; TF_CONFIG is derived from it
when Vertex did not set it (workerpool0 -> chief, workerpool1 -> worker, workerpool2 -> ps).
"""

from __future__ import annotations

import json
import logging
import os
import sys

from edgepipe.pipeline import config as config_module
from edgepipe.pipeline import dag, runner

POOL_TO_TASK_TYPE = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps"}


class TaskError(RuntimeError):
    """The task cannot run its stage as the pipeline wired it; the message says why."""


def run_task(stage: str, config_json: str, config_dir: str, root: str, settings: str,
             upstream: dict[str, str]) -> str:
    """Run `stage`; returns its cache key. Raises (the task fails, KFP skips what follows)
    when the stage fails or a gate halts the pipeline."""
    if not root:
        raise TaskError("the pipeline parameter `root` is empty: pass the artifact root when "
                        "you submit the pipeline, e.g. root=gs://BUCKET/edgepipe.")
    _log_progress()
    tf_config_from_cluster_spec()
    chosen = json.loads(settings or "{}")
    config = config_module.load(json.loads(config_json), dag.specs(),
                                overrides=chosen.get("overrides", []), root=root,
                                beam_options=chosen.get("beam_options", []), base_dir=config_dir)
    planned = {step.node.stage: step.key for step in runner.plan(config)}
    for producer, key in upstream.items():
        if key != planned[producer]:
            raise TaskError(
                f"stage {stage!r}: the {producer} task returned key {key}, but this task's "
                f"config gives {producer} the key {planned[producer]}: the tasks ran different "
                "configs or code; compile the pipeline again and run every task in one image.")
    summary = runner.run(config, stages=[stage])
    if summary["status"] == "halted":
        raise TaskError(summary["halt"])
    return planned[stage]


def tf_config_from_cluster_spec() -> None:
    """Set TF_CONFIG from Vertex AI's CLUSTER_SPEC when only the latter is set."""
    spec = os.environ.get("CLUSTER_SPEC")
    if os.environ.get("TF_CONFIG") or not spec:
        return
    spec = json.loads(spec)
    cluster = {POOL_TO_TASK_TYPE[pool]: hosts for pool, hosts in spec["cluster"].items()
               if pool in POOL_TO_TASK_TYPE}
    task = spec["task"]
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": cluster,
        "task": {"type": POOL_TO_TASK_TYPE[task["type"]], "index": task["index"]}})


def _log_progress() -> None:
    """The stage's progress at INFO in the task's log (through KFP's executor's handler when
    it has set one up)."""
    logger = logging.getLogger("edgepipe")
    logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
