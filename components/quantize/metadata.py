"""What a device needs to feed a .tflite model and read its answer, kept with the model.

The description (class names; the input's feature kind, dtype, shape, quantization scale and
zero point, the raw-value range the model was calibrated on and, for sequences, the padding
rule; for text, the vocabulary and the tokenizer, so a device or the server can turn raw
strings into the int32 token ids the model takes (edgepipe.contracts.text_tokens states the rule);
for models with state, such as the fused LSTM, that the state must be reset before each
example) goes two ways: a sidecar `<variant>.json` next to `<variant>.tflite` (the push stage
copies it with the model), and the same JSON inside the .tflite file as a TFLite metadata entry
named "edgepipe_metadata" (the flatbuffer's `metadata` list, which every TFLite runtime
ignores). From the same description, `standard_metadata.standard` says what the standard
TFLite metadata (edgepipe.components.tflite_metadata, which MediaPipe Tasks and the Task
Library read) holds:

- image: colour space (RGB for 3 channels, GRAYSCALE for 1), normalisation mean 0 / std 1:
  the model normalises inside, so tools feed the raw pixels 0..255 (MediaPipe requires
  NormalizationOptions on a float image input, and mean 0 / std 1 makes it pass the pixels
  through); a quantized input states its scale and zero point.
- sequence: steps x channels, the padding rule and the raw value range the variant was
  calibrated on; no normalisation options (the model normalises inside).
- text: the RegexTokenizer (delimiter regex equivalent to edgepipe.contracts.text_tokens, the
  vocabulary as "token id" lines), with what the caller must do: lowercase the text, and for
  a fused LSTM reset its state between texts.
- output: the class names as labels.txt (TENSOR_AXIS_LABELS); no score calibration (the
  pipeline does not calibrate scores).

LiteRT is imported inside the functions that use it.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from edgepipe.contracts import tasks

METADATA_NAME = "edgepipe_metadata"


def describe(
    model_content: bytes, variant: str, model_json: dict[str, Any], raw_range: tuple[float, float]
) -> dict[str, Any]:
    """The description of one converted variant, read from its own input/output tensors."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    feature = model_json.get("input_feature", "image")
    task = tasks.of_model(model_json)
    description = {
        "variant": variant,
        "task": task.name,
        "class_names": list(model_json.get("class_names") or []),
        **({"target_names": list(model_json["target_names"])}
           if model_json.get("target_names") else {}),
        "input": {
            "feature": feature,
            **_tensor(input_detail),
            # The raw values the model expects before any quantization (pixels 0..255, say):
            # the range over the training examples that calibrated the variant.
            "raw_range": [float(raw_range[0]), float(raw_range[1])],
        },
        "output": {"name": task.output, **_tensor(output_detail)},
    }
    if feature == "audio":
        description["input"]["sample_rate"] = int(model_json["sample_rate"])
    if feature == "sequence":
        description["input"]["padding"] = model_json.get("padding", "pre")
        description["input"]["padding_value"] = model_json.get("padding_value", 0.0)
    if feature == "text":
        description["input"].update(_text_input(model_json))
    if len(interpreter.get_output_details()) > 1:  # a detector: TFLite_Detection_PostProcess
        from edgepipe.contracts import litert

        description["output_roles"] = litert.detection_roles(model_content)
    if has_variable_tensors(model_content):
        # The fused LSTM op keeps its state between invokes: a runtime must reset it (LiteRT:
        # interpreter.reset_all_variables()) before each independent example.
        description["reset_variables_between_examples"] = True
    if description["input"]["scale"]:
        description["input"]["how_to_quantize"] = (
            "q = clip(round(raw / scale) + zero_point, dtype min, dtype max)"
        )
    return description


def _text_input(model_json: dict[str, Any]) -> dict[str, Any]:
    """What a text model's input description adds: the tokenizer and vocabulary."""
    from edgepipe.contracts import text_tokens

    vocabulary = list(model_json["vocabulary"])
    length = int(model_json["input_shape"][0])
    padding = model_json.get("padding", "pre")
    return {
        "padding": padding,
        "tokenizer": {
            **text_tokens.describe(vocabulary, length, padding),
            "rule": "lowercase the text; tokens = every match of token_pattern (Python re); "
                    "id = the token's index in vocabulary, unknown_id for other tokens; "
                    "'pre' padding keeps the last `length` ids and puts pad_id before them, "
                    "'post' keeps the first ones and pads after.",
        },
        "vocabulary": vocabulary,
        # Ids are indices, not values: no quantization applies to them.
        "raw_range": [0.0, float(len(vocabulary) - 1)],
    }


def has_variable_tensors(model_content: bytes) -> bool:
    """True when the model keeps state between invokes (the fused LSTM's h and c tensors)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_content, 0)
    return any(
        model.Subgraphs(graph).Tensors(tensor).IsVariable()
        for graph in range(model.SubgraphsLength())
        for tensor in range(model.Subgraphs(graph).TensorsLength())
    )


def _tensor(detail: dict) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    return {
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [int(size) for size in detail["shape"]],
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def embed(model_content: bytes, description: dict[str, Any]) -> bytes:
    """The model with `description` as JSON in a metadata entry (replacing an older one)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_content), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(description, sort_keys=True).encode(), np.uint8)
    model.buffers = list(model.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [item for item in (model.metadata or []) if _name(item) != METADATA_NAME]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_embedded(model_content: bytes) -> dict[str, Any] | None:
    """The description embedded by `embed`, or None when the model has none."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_content, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name() and entry.Name().decode() == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(data).decode("utf-8"))
    return None


def write_sidecar(tflite_path: pathlib.Path, description: dict[str, Any]) -> pathlib.Path:
    """Writes `<variant>.json` beside `<variant>.tflite`; returns its path."""
    path = tflite_path.with_suffix(".json")
    path.write_text(json.dumps(description, indent=2) + "\n")
    return path


def _name(entry) -> str:
    name = entry.name
    return name.decode() if isinstance(name, bytes) else str(name or "")
