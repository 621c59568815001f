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
