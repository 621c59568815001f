"""`edgepipe compile CONFIG --target kfp|vertex -o pipeline.yaml`: a KFP v2 pipeline spec with
one task per stage, wired as pipeline/dag.py, each running its stage in the project's image
with the config embedded (pipeline/kfp_components.py, pipeline/kfp_task.py).

Targets:
    kfp     every task is the stage's lightweight Python component (Kubeflow Pipelines, and
            Vertex AI Pipelines with train on one node); runs under kfp.local too
    vertex  the same, with train run as a Vertex AI custom job of [kfp] train_replicas
            replicas (workerpool0: the chief, workerpool1: the workers) on
            train_machine_type with train's accelerators, under MultiWorkerMirroredStrategy
            when there are several replicas. GCPC's launcher task cannot run under kfp.local.

Per-task resources, the image, Beam runner options and retries come from the config's [kfp]
section (docs/configuration.md#kfp); none of them is part of a cache key.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from edgepipe.pipeline import config as config_module
from edgepipe.pipeline import dag, runner

TARGETS = ("kfp", "vertex")


def compile_pipeline(config_path: str | pathlib.Path, target: str, output: str | pathlib.Path,
                     image: str | None = None, root: str | None = None,
                     overrides: list[str] = (), config_dir: str | None = None) -> dict[str, Any]:
    """Write the pipeline spec; returns what was compiled (tasks, image, root, target).
    Raises ConfigError for a config that cannot run, an unknown target or a missing kfp."""
    if target not in TARGETS:
        raise config_module.ConfigError(f"unknown --target {target!r}: use one of {TARGETS}.")
    try:
        from kfp import compiler

        from edgepipe.pipeline import kfp_components as parts
    except ImportError as error:
        raise config_module.ConfigError(f"edgepipe compile needs the kfp SDK ({error}): pip "
                                        "install 'edgepipe[kfp]'.") from None
    config = config_module.load(config_path, dag.specs(), overrides=list(overrides),
                                root=root)
    nodes = dag.active(config.stages)  # an optional stage (tune) only with its section
    runner.check_wiring(nodes)
    kfp = config.kfp
    image = image or kfp.image
    root_default = config.root if isinstance(config.root, str) else ""  # a URI, else required
    pipeline = parts.build_pipeline(
        name=f"edgepipe-{config.name}".lower().replace("_", "-"),
        config_json=json.dumps(config_module.read(config_path), sort_keys=True),
        stages=list(nodes), settings=task_settings(config, overrides, target),
        resources=dict(kfp.resources), image=image, root=root_default,
        config_dir=config_dir or kfp.config_dir, retries=kfp.retries,
        vertex_train=vertex_train(kfp) if target == "vertex" else None)
    compiler.Compiler().compile(pipeline, str(output))
    return {"target": target, "image": image, "root": root_default, "output": str(output),
            "tasks": [node.stage for node in nodes]}


def task_settings(config, overrides, target: str) -> dict[str, str]:
    """Per stage: the config overrides and Beam options its task applies."""
    from edgepipe.pipeline.kfp_components import settings_text

    kfp = config.kfp
    common = list(overrides)
    if kfp.beam_runner:
        common.append(f"beam.runner={kfp.beam_runner}")
    beam = [f"{key}={value}" for key, value in sorted(kfp.beam_options.items())]
    result = {}
    for node in dag.active(config.stages):
        extra = []
        if node.stage == "train" and target == "vertex" and kfp.train_replicas > 1:
            extra.append("runtime.strategy=multi_worker")
        result[node.stage] = settings_text(common + extra, beam)
    return result


def vertex_train(kfp) -> dict[str, Any]:
    """Arguments of GCPC's create_custom_training_job_from_component for train, and the
    extra task inputs of the wrapped component."""
    resources = kfp.resources.get("train")
    job: dict[str, Any] = {
        "display_name": "edgepipe-train", "replica_count": kfp.train_replicas,
        "machine_type": kfp.train_machine_type, "boot_disk_size_gb": 100,
        "env": [{"name": "TF_USE_LEGACY_KERAS", "value": "1"}],
    }
    if resources is not None and resources.accelerator_type:
        job.update(accelerator_type=resources.accelerator_type,
                   accelerator_count=resources.accelerator_count or 1)
    task: dict[str, Any] = {"location": kfp.location}
    if kfp.train_replicas > 1:  # a collective needs every replica: restart them together
        task["restart_job_on_worker_restart"] = True
    return {"job": job, "task": task}
