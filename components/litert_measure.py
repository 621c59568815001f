"""Run a .tflite model on the LiteRT interpreter and describe what it contains.

Shared by the quantize stage (which measures every variant) and by anything else that must run
a converted model the way a device would: batch 1, quantized inputs fed as integers. LiteRT is
imported inside the functions that use it, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

# Flex ops are TensorFlow kernels wrapped as TFLite custom ops; the plain runtime lacks them.
FLEX_PREFIX = "Flex"


@dataclasses.dataclass(frozen=True)
class Run:
    """The interpreter's outputs over a set of inputs, and how long each invoke() took."""

    probabilities: np.ndarray  # float32 [N, num_classes], dequantized when the output is int
    invoke_seconds: np.ndarray  # float64 [N], one entry per timed invoke()
    input_dtype: str
    output_dtype: str


def op_names(model_content: bytes) -> list[str]:
    """Sorted unique op names used by every subgraph: builtin names, or custom op names.

    Read from the flatbuffer itself rather than the interpreter, whose node list shows
    delegate kernels (XNNPACK) in place of the ops once tensors are allocated.
    """
    from ai_edge_litert import schema_py_generated as schema

    builtin_names = {
        value: name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_")
    }
    model = schema.Model.GetRootAs(model_content, 0)
    names = set()
    for subgraph_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(subgraph_index)
        for operator_index in range(subgraph.OperatorsLength()):
            code = model.OperatorCodes(subgraph.Operators(operator_index).OpcodeIndex())
            # Builtin codes above 127 live in BuiltinCode; older ones in the deprecated byte.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == schema.BuiltinOperator.CUSTOM:
                names.add(code.CustomCode().decode("utf-8"))
            else:
                names.add(builtin_names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(names)


def builtin_only(names: list[str]) -> bool:
    """True when every op is a TFLite builtin: no Flex (Select TF) op and no custom op."""
    from ai_edge_litert import schema_py_generated as schema

    builtin_names = {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")}
    return all(name in builtin_names and not name.startswith(FLEX_PREFIX) for name in names)


def quantize_input(
    values: np.ndarray, dtype: np.dtype, scale: float, zero_point: int
) -> np.ndarray:
    """Float inputs -> the integer values an int8/uint8 input tensor expects."""
    if scale == 0:
        raise ValueError(
            f"The model's {np.dtype(dtype).name} input has no quantization scale; "
            "it cannot be fed float data. Reconvert it with a representative dataset."
        )
    info = np.iinfo(dtype)
    quantized = np.round(values / scale) + zero_point
    return np.clip(quantized, info.min, info.max).astype(dtype)


def dequantize_output(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer outputs -> float32 values; float outputs pass through."""
    if np.issubdtype(values.dtype, np.integer) and scale != 0:
        return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return values.astype(np.float32)


def run(
    model_content: bytes,
    inputs: np.ndarray,
    num_threads: int = 1,
    warmup: int = 5,
    name: str = "model",
) -> Run:
    """Invoke the model once per row of `inputs` (float32, raw values) at batch size 1.

    Integer inputs are quantized with the input tensor's (scale, zero_point) and integer outputs
    dequantized with the output's. Only invoke() is timed, after `warmup` untimed invokes, so
    the latencies exclude copying data in and out.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    expected = tuple(int(size) for size in input_detail["shape"])
    if tuple(inputs.shape[1:]) != expected[1:] or expected[0] != 1:
        raise ValueError(
            f"{name}: the interpreter expects inputs of shape {expected} (batch 1), but the data "
            f"has examples of shape {tuple(inputs.shape[1:])}; convert the model with a fixed "
            "batch size of 1 and the data's example shape."
        )
    input_dtype = np.dtype(input_detail["dtype"])
    if np.issubdtype(input_dtype, np.integer):
        scale, zero_point = input_detail["quantization"]
        feed = quantize_input(inputs.astype(np.float32), input_dtype, scale, zero_point)
    else:
        feed = inputs.astype(input_dtype)
    out_scale, out_zero_point = output_detail["quantization"]

    for _ in range(warmup):
        interpreter.set_tensor(input_detail["index"], feed[:1])
        interpreter.invoke()
    outputs = []
    seconds = np.empty(len(feed), dtype=np.float64)
    for index in range(len(feed)):
        interpreter.set_tensor(input_detail["index"], feed[index : index + 1])
        started = time.perf_counter()
        interpreter.invoke()
        seconds[index] = time.perf_counter() - started
        outputs.append(interpreter.get_tensor(output_detail["index"])[0])
    raw = np.stack(outputs) if outputs else np.empty((0, *output_detail["shape"][1:]))
    return Run(
        probabilities=dequantize_output(raw, out_scale, out_zero_point),
        invoke_seconds=seconds,
        input_dtype=input_dtype.name,
        output_dtype=np.dtype(output_detail["dtype"]).name,
    )
