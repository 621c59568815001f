"""Push stage: copy a blessed model into the versioned registry that `edgepipe serve` serves.

Only a model whose evaluation is BLESSED is pushed; otherwise the stage refuses and says why
(a normal outcome shown in the run summary, not an error). A version folder is the SavedModel
itself (saved_model.pb and variables/ at its root, so TensorFlow Serving and KServe load
`<registry>/<name>` as it is), with beside it the deployable TFLite variant as model.tflite
(standard TFLite metadata and labels inside; its sidecar, int8.json say, as
model.tflite.json), model.json, the class names as labels.txt, and metadata.json recording
its lineage: the run, the data (examples key), the model key, the metrics. Pushing a model already in the registry
(same model key) adds nothing. The relative gate is checked again under the registry's lock
(gate.py): a version pushed by another run since this model was evaluated can make the push
refuse, saying why. Where the registry is and what the model is called come from
the pipeline's [registry] section; the layout and its atomic commit live in
edgepipe.contracts.registry.
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Any

from edgepipe.components.push.gate import push_time_check
from edgepipe.contracts import artifacts, characters, registry, tasks
from edgepipe.pipeline.stage import Artifact, Context, RegistrySettings, StageConfig
from edgepipe.pipeline.spec import StageSpec



# Files of the Model artifact a registry version keeps when present: a generator's vocabulary.
EXTRA_FILES = (characters.FILE,)


class Config(StageConfig):
    # The pipeline's [registry] (set by the config loader); None: nothing is pushed.
    registry: RegistrySettings | None = None


def run(inputs: dict[str, Artifact], outputs: dict[str, pathlib.Path], config: Config,
        context: Context) -> dict[str, Any]:
    blessing = artifacts.read_blessing(inputs["evaluation"].path)
    if config.registry is None:
        result = {"pushed": False, "reason": "no registry configured: add a [registry] section"}
    elif not blessing.blessed:
        result = {"pushed": False, "reason": f"model not blessed, push refused: {blessing.reason}"}
    else:
        result = _publish(inputs, config.registry, context, blessing.reason)
        if result["pushed"]:
            context.log.info("push: %s (%s variant, %s)", result["reason"], result["variant"],
                             result["path"])
    if not result["pushed"]:
        context.log.warning("push: %s", result["reason"])
    result["registry"] = config.registry.path if config.registry else ""
    artifacts.write_pushed(outputs["pushed"], result)
    return result


def _publish(inputs: dict[str, Artifact], settings: RegistrySettings, context: Context,
             verdict: str) -> dict[str, Any]:
    model_dir = inputs["model"].path
    model_info = artifacts.read_model_info(model_dir)
    deployable = artifacts.read_deployable(inputs["tflite"].path)
    tflite_file = deployable["file"]

    def fill(folder: pathlib.Path) -> None:
        # The version folder is the SavedModel directory (TF Serving's layout).
        shutil.copytree(model_dir / registry.SAVED_MODEL_FOLDER, folder, dirs_exist_ok=True)
        shutil.copy2(model_dir / artifacts.MODEL_INFO, folder / artifacts.MODEL_INFO)
        shutil.copy2(tflite_file, folder / registry.TFLITE_MODEL)
        for sidecar in sidecar_files(tflite_file):
            shutil.copy2(sidecar, folder / registry.sidecar_name(sidecar.name, tflite_file.stem))
        for extra in EXTRA_FILES:  # what a task's model needs besides (a generator's characters)
            if (model_dir / extra).is_file():
                shutil.copy2(model_dir / extra, folder / extra)
        if model_info.get("class_names"):  # a classifier's labels (not a regression model's)
            (folder / registry.LABELS).write_text("\n".join(model_info["class_names"]) + "\n")

    metadata = lineage(inputs, context, model_info, deployable, verdict)
    name = settings.model_name
    check = push_time_check(settings, artifacts.read_metrics(inputs["evaluation"].path),
                            inputs["model"].key, inputs["examples"].key)
    published = registry.publish(settings.path, name, fill, metadata, check)
    if published.get("refused"):
        return {"pushed": False, "created": False, "model_name": name,
                "variant": deployable["variant"],
                "reason": f"push refused: {published['refused']}"}
    return {
        "pushed": True,
        "created": published["created"],
        "model_name": name,
        "version": published["version"],
        "path": published["path"],
        "variant": deployable["variant"],
        "reason": (f"pushed as {name} v{published['version']}" if published["created"]
                   else f"already in the registry as {name} v{published['version']} "
                   "(same model key): nothing new pushed"),
    }


def sidecar_files(tflite_file: pathlib.Path) -> list[pathlib.Path]:
    """Files describing the variant beside it: same stem, another suffix (int8.json...)."""
    return sorted(
        path for path in tflite_file.parent.glob(f"{tflite_file.stem}.*")
        if path != tflite_file and path.is_file()
    )


def lineage(inputs: dict[str, Artifact], context: Context, model_info: dict,
            deployable: dict, verdict: str) -> dict[str, Any]:
    """metadata.json without version and push time (the registry adds those at commit)."""
    metrics = artifacts.read_metrics(inputs["evaluation"].path)
    variants = {record["name"]: record for record in artifacts.read_variants(inputs["tflite"].path)}
    feature = model_info["input_feature"]
    return {
        "pipeline": context.pipeline_name,
        "run_id": context.run_id,
        "model_run_id": inputs["model"].run_id,
        "metrics": {key: value for key, value in metrics.items()
                    if isinstance(value, (int, float)) or key in ("macro_avg", "weighted_avg")},
        "blessing": verdict,
        "examples_key": inputs["examples"].key,
        "model_key": inputs["model"].key,
        "evaluation_key": inputs["evaluation"].key,
        "tflite_key": inputs["tflite"].key,
        "variant": deployable["variant"],
        "deployable": {key: value for key, value in deployable.items() if key != "file"},
        "tflite": variants.get(deployable["variant"], {}),
        "task": tasks.of_model(model_info).name,
        "class_names": list(model_info.get("class_names") or []),
        **({"target_names": list(model_info["target_names"])}
           if model_info.get("target_names") else {}),
        "input": {
            "name": feature,
            "shape": list(model_info["input_shape"]),
            "dtype": model_info["input_dtype"],
            **({"padding": model_info["padding"]} if "padding" in model_info else {}),
        },
    }


SPEC = StageSpec(
    name="push", version=2, config=Config, run=run,
    inputs={"model": "Model", "evaluation": "Evaluation", "tflite": "TFLiteModels",
            "examples": "Examples"},
    outputs={"pushed": "PushedModel"},
)
