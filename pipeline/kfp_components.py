"""The Kubeflow Pipelines (KFP v2) components: one lightweight Python component per stage.

Each component body runs exactly one stage of the pipeline, the way `edgepipe run CONFIG
--stage NAME` does (pipeline/kfp_task.py), inside the project's pipeline image, and returns the
stage's cache key; a downstream task takes the keys of the stages it reads as inputs, which
is how the tasks are wired as pipeline/dag.py wires the stages. The artifacts themselves stay
in the artifact store (the bucket): KFP passes only keys, and KFP's own cache is off, because
the store is the cache.

The same definitions run under `kfp.local` (SubprocessRunner: lightweight Python components
only) and on Vertex AI Pipelines or a Kubeflow cluster; KFP copies each body's source into the
task's command, so every import is inside the body, and the image must hold kfp and edgepipe
(`install_kfp_package=False`: no pip install when a task starts).

No `from __future__ import annotations` in this module: KFP reads the annotations of the
component functions as types, and postponed (string) annotations make dsl.component fail.
"""

import json
import linecache

from kfp import dsl

# ---------------------------------------------------------------- component bodies
# One per stage of the DAG, named after it; the parameters after `settings` are the keys of the
# stages it reads (pipeline/dag.py), in DAG order. KFP embeds a lightweight component's source
# in the task's command (inspect.getsource), so each body is written as source text from the
# DAG and registered with linecache: no stage list to keep in step with dag.py here.

BODY = """def {stage}(config_json: str, config_dir: str, root: str, settings: str{parameters}) -> str:
    from edgepipe.pipeline.kfp_task import run_task
    return run_task({stage!r}, config_json, config_dir, root, settings, {{{keys}}})
"""


def body(stage: str, upstream: list[str]):
    """The component function of `stage`, taking the keys of the `upstream` stages (names are
    identifiers: StageSpec checks them)."""
    source = BODY.format(stage=stage, parameters="".join(f", {name}: str" for name in upstream),
                         keys=", ".join(f"{name!r}: {name}" for name in upstream))
    filename = f"<edgepipe.pipeline.kfp_components: {stage}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": __name__}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102  our own template
    return namespace[stage]


def upstream_stages(node) -> list[str]:
    """The stages whose keys a node's component takes: those it reads, in DAG order."""
    return list(dict.fromkeys(producer for producer, _ in node.inputs.values()))


def component(node, image: str):
    """The stage's component, run in `image` (which must hold kfp and edgepipe)."""
    return dsl.component(body(node.stage, upstream_stages(node)), base_image=image,
                         install_kfp_package=False)


def settings_text(overrides: list[str], beam_options: list[str]) -> str:
    """The compile-time `settings` argument of a task: config overrides (section.key=value)
    and Beam options (key=value) applied when the task loads the embedded config."""
    return json.dumps({"overrides": list(overrides), "beam_options": list(beam_options)})


# ---------------------------------------------------------------- the pipeline


def build_pipeline(name: str, config_json: str, stages: list, settings: dict, resources: dict,
                   image: str, root: str, config_dir: str, retries: int = 0,
                   vertex_train: dict = None):
    """The pipeline function: one task per stage of `stages` (pipeline/dag.py nodes), each
    given the keys of the stages it reads. `settings` and `resources` map a stage to its
    settings_text and its [kfp] resources; `vertex_train` (Vertex AI only) holds the
    arguments of the multi-replica custom job that runs train. `root`, `config_dir` and the
    embedded `config_json` (the config's tables as JSON) are pipeline parameters (defaults:
    the arguments)."""
    ops = {node.stage: component(node, image) for node in stages}
    if vertex_train is not None:
        from google_cloud_pipeline_components.v1.custom_job import (
            create_custom_training_job_from_component)

        ops["train"] = create_custom_training_job_from_component(
            ops["train"], **vertex_train["job"])

    @dsl.pipeline(name=name, description="edgepipe: one task per stage, artifacts in the "
                  "artifact store at `root`")
    def edgepipe_pipeline(root: str = root, config_dir: str = config_dir,
                          config_json: str = config_json):
        tasks = {}
        for node in stages:
            keys = {producer: tasks[producer].outputs["Output"]
                    for producer in upstream_stages(node)}
            extra = vertex_train["task"] if vertex_train and node.stage == "train" else {}
            task = ops[node.stage](config_json=config_json, config_dir=config_dir, root=root,
                                   settings=settings[node.stage], **keys, **extra)
            task.set_display_name(node.stage)
            task.set_caching_options(False)  # the artifact store is the cache
            if not extra:
                set_resources(task, resources.get(node.stage))
            if retries:
                task.set_retry(num_retries=retries, backoff_duration="30s")
            tasks[node.stage] = task

    return edgepipe_pipeline


def set_resources(task, resources) -> None:
    """CPU, memory and accelerator limits of a task from its [kfp] resources entry."""
    if resources is None:
        return
    if resources.cpu:
        task.set_cpu_limit(str(resources.cpu))
    if resources.memory:
        task.set_memory_limit(resources.memory)
    if resources.accelerator_type:
        task.set_accelerator_type(resources.accelerator_type)
        task.set_accelerator_limit(resources.accelerator_count or 1)
