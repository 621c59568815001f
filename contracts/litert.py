"""Feeding a .tflite model and reading its answer, the way a device does: batch 1, integer
inputs quantized with the input tensor's scale and zero point, integer outputs dequantized,
stateful ops reset between examples.

The quantize stage measures every variant with `invoke_each` and the model server predicts
with it, so what was measured is what is served. numpy only; the interpreter is passed in.
"""

from __future__ import annotations

import time

import numpy as np


def quantize_input(values: np.ndarray, dtype: np.dtype, scale: float,
                   zero_point: int) -> np.ndarray:
    """Float inputs -> the integer values an int8/uint8 input tensor expects."""
    if scale == 0:
        raise ValueError(
            f"The model's {np.dtype(dtype).name} input has no quantization scale; "
            "it cannot be fed float data. Reconvert it with a representative dataset."
        )
    info = np.iinfo(dtype)
    quantized = np.round(values / scale) + zero_point
    return np.clip(quantized, info.min, info.max).astype(dtype)


def model_feed(inputs: np.ndarray, input_detail: dict, name: str = "model") -> np.ndarray:
    """What to set as the input tensor: quantized values for a quantized integer input, ids
    for an unquantized integer input (token ids), else the values in the input's dtype."""
    input_dtype = np.dtype(input_detail["dtype"])
    scale, zero_point = input_detail["quantization"]
    if np.issubdtype(input_dtype, np.integer) and scale:
        return quantize_input(inputs.astype(np.float32), input_dtype, scale, zero_point)
    if np.issubdtype(input_dtype, np.integer) and np.asarray(inputs).dtype.kind not in "iu":
        raise ValueError(
            f"{name}: the model takes {input_dtype.name} ids (an unquantized integer input, "
            f"such as text token ids) but got {np.asarray(inputs).dtype.name} values; prepare "
            "the inputs with edgepipe.contracts.model_inputs.")
    return np.asarray(inputs).astype(input_dtype, copy=False)


def dequantize_output(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer outputs -> float32 values; float outputs pass through."""
    if np.issubdtype(values.dtype, np.integer) and scale != 0:
        return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return values.astype(np.float32)


def invoke_each(interpreter, inputs: np.ndarray, name: str = "model",
                seconds: np.ndarray | None = None) -> np.ndarray:
    """Float32 outputs [N, ...] of one invoke per row of `inputs` (float32 raw values, or
    int32 token ids), on an interpreter whose tensors are allocated.

    Variable tensors (a fused LSTM's state) are reset before every example, so each is
    independent, as in the Keras model. When `seconds` is given, it receives the duration of
    each invoke() alone (no copying in or out).
    """
    input_detail = interpreter.get_input_details()[0]
    if len(interpreter.get_output_details()) > 1:
        return _invoke_each_outputs(interpreter, inputs, name, seconds)
    output_detail = interpreter.get_output_details()[0]
    feed = model_feed(inputs, input_detail, name)
    input_index, output_index = input_detail["index"], output_detail["index"]
    outputs = []
    for row in range(len(feed)):
        # A fused LSTM keeps its hidden and cell state in variable tensors across invokes:
        # without a reset, one sequence's final state becomes the next one's initial state.
        interpreter.reset_all_variables()
        interpreter.set_tensor(input_index, feed[row:row + 1])
        started = time.perf_counter()
        interpreter.invoke()
        if seconds is not None:
            seconds[row] = time.perf_counter() - started
        outputs.append(interpreter.get_tensor(output_index)[0])
    raw = np.stack(outputs) if outputs else np.empty((0, *output_detail["shape"][1:]))
    scale, zero_point = output_detail["quantization"]
    return dequantize_output(raw, scale, zero_point)


def _invoke_each_outputs(interpreter, inputs: np.ndarray, name: str,
                         seconds: np.ndarray | None) -> dict[int, np.ndarray]:
    """invoke_each for a model of several outputs (a detector's four): {output position:
    float32 values [N, ...]}, in the model's output order."""
    input_detail = interpreter.get_input_details()[0]
    details = interpreter.get_output_details()
    feed = model_feed(inputs, input_detail, name)
    found: dict[int, list] = {position: [] for position in range(len(details))}
    for row in range(len(feed)):
        interpreter.reset_all_variables()
        interpreter.set_tensor(input_detail["index"], feed[row:row + 1])
        started = time.perf_counter()
        interpreter.invoke()
        if seconds is not None:
            seconds[row] = time.perf_counter() - started
        for position, detail in enumerate(details):
            found[position].append(interpreter.get_tensor(detail["index"])[0])
    return {position: dequantize_output(
        np.stack(values) if values else np.empty((0, *details[position]["shape"][1:])),
        *details[position]["quantization"]) for position, values in found.items()}


DETECTION_OP = "TFLite_Detection_PostProcess"
DETECTION_ROLES = ("locations", "classes", "scores", "count")  # the op's outputs, in order


def detection_roles(model_content: bytes) -> list[str]:
    """The role (DETECTION_ROLES) of each output of a detector, in the model's output order:
    which output of its TFLite_Detection_PostProcess op each model output is. ValueError for
    a model without that op."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_content, 0)
    graph = model.Subgraphs(0)
    for index in range(graph.OperatorsLength()):
        operator = graph.Operators(index)
        code = model.OperatorCodes(operator.OpcodeIndex())
        if (code.CustomCode() or b"").decode() == DETECTION_OP:
            produced = [operator.Outputs(i) for i in range(operator.OutputsLength())]
            return [DETECTION_ROLES[produced.index(graph.Outputs(i))]
                    for i in range(graph.OutputsLength())]
    raise ValueError(f"the model has no {DETECTION_OP} op: it is not a box detector.")


def detections_by_role(outputs: dict[int, np.ndarray], roles: list[str]) -> dict[str, np.ndarray]:
    """{"boxes", "classes", "scores", "count"} of a detector's outputs by position."""
    named = {role: outputs[position] for position, role in enumerate(roles)}
    return {"boxes": named["locations"], "classes": named["classes"],
            "scores": named["scores"], "count": named["count"].reshape(-1)}
