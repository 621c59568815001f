"""TF Serving's GetModelMetadataResponse for a served version, plus its lineage."""

from __future__ import annotations

from edgepipe.serving.requests import SIGNATURE

TF_DTYPES = {"uint8": "DT_UINT8", "float32": "DT_FLOAT", "int8": "DT_INT8", "int32": "DT_INT32"}


def metadata(model) -> dict:
    """TF Serving's GetModelMetadataResponse, plus the version's lineage under "edgepipe"."""
    spec = model.spec
    dims = [-1] + ([-1, *spec.shape[1:]] if spec.variable_length else list(spec.shape))
    tensor = lambda dtype, shape, name: {  # noqa: E731
        "dtype": TF_DTYPES.get(dtype, dtype), "name": name,
        "tensor_shape": {"dim": [{"size": str(size), "name": ""} for size in shape], "unknown_rank": False},
    }
    signature = {
        "inputs": {spec.name: tensor(spec.dtype, dims, f"{SIGNATURE}_{spec.name}:0")},
        "outputs": {model.task.output: tensor("float32", [-1, len(model.class_names)] if
                                              "grid" not in model.model_json else  # a heat map
                                              [-1, *model.model_json["grid"],
                                               1 + len(model.class_names)],
                                              "StatefulPartitionedCall:0")},
        "method_name": "tensorflow/serving/predict",
    }
    names = "class_names" if model.task.label == "class" else "target_names"
    edgepipe = {**model.metadata, "runtime": model.runtime_name, "task": model.task.name,
                names: model.class_names}
    if hasattr(model.runtime, "generate"):  # a text generator answers :generate
        edgepipe["generate_request"] = {
            "url": f"/v1/models/{model.name}/versions/{model.version}:generate",
            "body": {"prompt": "text", "length": "1..2000", "temperature": ">= 0 (0: greedy)",
                     "seed": "integer"},
            "signature": "step(token, h, c) -> (logits, h, c)",
            "vocabulary_size": spec.vocabulary_size}
    elif spec.name == "text":  # how the server turns a string into the ids the signature takes
        edgepipe["text_input"] = {"accepts": spec.describe(),
                                  "tokenizer": model.model_json.get("tokenizer", {})}
    return {
        "model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
        "edgepipe": edgepipe,
    }
