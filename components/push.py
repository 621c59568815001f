"""Push stage: copy a blessed model into the versioned registry that `edgepipe serve` serves.

Only a model whose evaluation is BLESSED is pushed; otherwise the stage refuses and says why
(a normal outcome shown in the run summary, not an error). A version holds the SavedModel, the
deployable TFLite variant as model.tflite (its sidecar files, int8.json say, as model.tflite.json), model.json, the class names
as labels.txt, and metadata.json recording its lineage: the run, the data (examples key), the
model key, the metrics. Pushing a model already in the registry (same model key) adds nothing.
The registry layout and its atomic commit live in serving/registry.py.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import pydantic

from pipeline.stage import Artifact, Context, OutputPath, StageConfig

NAME = "push"
VERSION = 1
INPUTS = {"model": "Model", "evaluation": "Evaluation", "tflite": "TFLiteModels", "examples": "Examples"}
OUTPUTS = {"pushed": "PushedModel"}
CODE = ("serving.registry",)

# Without a deployable.json from quantize, the first of these that exists is deployed.
VARIANT_PREFERENCE = ("int8", "float32")


class Config(StageConfig):
    registry: OutputPath = pydantic.Field(
        "",
        description="Registry folder (relative to the config file) or gs:// URI; versions go "
        "to <registry>/<model name>/<version>/. Empty: nothing is pushed.",
    )
    model_name: str = pydantic.Field(
        "",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*)?$",
        description="Name of the model in the registry (its folder and its URL in the "
        "service); empty means the pipeline's name.",
    )

    @pydantic.field_validator("registry", mode="wrap")
    @classmethod
    def _empty_means_none(cls, value, handler):
        return "" if value == "" else handler(value)


def run(inputs: dict[str, Artifact], outputs: dict[str, pathlib.Path], config: Config,
        context: Context) -> dict[str, Any]:
    from serving import registry

    model_name = config.model_name or context.pipeline_name
    blessed, verdict = blessing(inputs["evaluation"].path)
    if not config.registry:
        result = {"pushed": False, "reason": "no registry configured: set [push] registry"}
    elif not blessed:
        result = {"pushed": False, "reason": f"model not blessed, push refused: {verdict}"}
    else:
        model_dir = inputs["model"].path
        tflite_dir = inputs["tflite"].path
        model_json = _read_json(model_dir / "model.json")
        variant, tflite_file = deployable_variant(tflite_dir)
        metadata = lineage(inputs, context, model_json, variant, verdict)

        def fill(folder: pathlib.Path) -> None:
            shutil.copytree(model_dir / "saved_model", folder / "saved_model")
            shutil.copy2(model_dir / "model.json", folder / "model.json")
            shutil.copy2(tflite_file, folder / "model.tflite")
            for sidecar in sidecar_files(tflite_file):
                shutil.copy2(sidecar, folder / ("model.tflite" + sidecar.name[len(tflite_file.stem):]))
            (folder / "labels.txt").write_text("\n".join(model_json["class_names"]) + "\n")

        published = registry.publish(config.registry, model_name, fill, metadata)
        result = {
            "pushed": True,
            "created": published["created"],
            "model_name": model_name,
            "version": published["version"],
            "path": published["path"],
            "variant": variant,
            "reason": (f"pushed as {model_name} v{published['version']}" if published["created"]
                       else f"already in the registry as {model_name} v{published['version']} "
                       "(same model key): nothing new pushed"),
        }
        context.log.info("push: %s (%s variant, %s)", result["reason"], variant, published["path"])
    if not result["pushed"]:
        context.log.warning("push: %s", result["reason"])
    result["registry"] = config.registry
    (outputs["pushed"] / "pushed.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def blessing(evaluation_dir: pathlib.Path) -> tuple[bool, str]:
    """(blessed?, the reason evaluate wrote beside its marker)."""
    for marker, blessed in (("BLESSED", True), ("NOT_BLESSED", False)):
        path = evaluation_dir / marker
        if path.is_file():
            lines = path.read_text().strip().splitlines()
            return blessed, lines[0] if lines else marker
    raise FileNotFoundError(
        f"{evaluation_dir} holds neither BLESSED nor NOT_BLESSED: pass the `evaluation` "
        "artifact written by the evaluate stage."
    )


def deployable_variant(tflite_dir: pathlib.Path) -> tuple[str, pathlib.Path]:
    """(variant name, .tflite file): quantize's deployable.json choice, else int8, else float32."""
    choice = tflite_dir / "deployable.json"
    if choice.is_file():
        record = _read_json(choice)
        name = record.get("variant") or record.get("name")
        path = tflite_dir / (record.get("path") or f"{name}.tflite")
        if not name or not path.is_file():
            raise FileNotFoundError(
                f"{choice} names variant {name!r} at {path}, which does not exist: expected "
                '{"variant": <name>, "path": <file in the folder>}. Re-run quantize.'
            )
        return name, path
    for name in VARIANT_PREFERENCE:
        if (tflite_dir / f"{name}.tflite").is_file():
            return name, tflite_dir / f"{name}.tflite"
    found = sorted(path.name for path in tflite_dir.glob("*.tflite"))
    raise FileNotFoundError(
        f"{tflite_dir} has no deployable.json and none of {[f'{n}.tflite' for n in VARIANT_PREFERENCE]} "
        f"(it has {found}); add int8 or float32 to [quantize] variants."
    )


def sidecar_files(tflite_file: pathlib.Path) -> list[pathlib.Path]:
    """Files describing the variant beside it: same stem, another suffix (int8.json...)."""
    return sorted(
        path for path in tflite_file.parent.glob(f"{tflite_file.stem}.*")
        if path != tflite_file and path.is_file()
    )


def lineage(inputs: dict[str, Artifact], context: Context, model_json: dict, variant: str,
            verdict: str) -> dict[str, Any]:
    """metadata.json without version and push time (the registry adds those at commit)."""
    metrics = _read_json(inputs["evaluation"].path / "metrics.json")
    variants = {record["name"]: record for record in _read_json_or(inputs["tflite"].path / "variants.json", [])}
    feature = model_json.get("input_feature", "image")
    return {
        "pipeline": context.pipeline_name,
        "run_id": context.run_id,
        "model_run_id": _read_json_or(inputs["model"].path / "manifest.json", {}).get("run_id"),
        "metrics": {
            key: value for key, value in metrics.items()
            if isinstance(value, (int, float)) or key in ("macro_avg", "weighted_avg")
        },
        "blessing": verdict,
        "examples_key": inputs["examples"].key,
        "model_key": inputs["model"].key,
        "evaluation_key": inputs["evaluation"].key,
        "tflite_key": inputs["tflite"].key,
        "variant": variant,
        "deployable": _read_json_or(inputs["tflite"].path / "deployable.json", {}),
        "tflite": variants.get(variant, {}),
        "class_names": list(model_json["class_names"]),
        "input": {
            "name": feature,
            "shape": list(model_json["input_shape"]),
            "dtype": model_json.get("input_dtype", "uint8" if feature == "image" else "float32"),
            **({"padding": model_json["padding"]} if "padding" in model_json else {}),
        },
    }


def _read_json(path: pathlib.Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the input artifact is incomplete; re-run the stage that writes it.")
    return json.loads(path.read_text())


def _read_json_or(path: pathlib.Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default
