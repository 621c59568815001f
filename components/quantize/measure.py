"""Measure a .tflite variant on the LiteRT interpreter and describe what it contains.

The quantize stage runs every variant the way a device would (edgepipe.contracts.litert:
batch 1, quantized inputs fed as integers) and records its outputs, latencies, peak memory and
ops. LiteRT is imported inside the functions that use it, so importing this module is cheap.

Latency is only meaningful next to the CPU it was measured on: int8 kernels are fast where the
CPU has integer dot-product instructions (x86 AVX-512 VNNI / AVX-VNNI / AMX, ARM dot-product)
and XNNPACK accelerates the float path everywhere, so `cpu_description` reports those flags.
`peak_memory_bytes` runs the model in a fresh Python process that loads only LiteRT and numpy
(a process that already ran other models reuses freed memory and would show almost nothing):
the growth of its peak resident set (Linux VmHWM, reset through /proc/self/clear_refs) from
just before the interpreter maps the file to after the first invoke. That covers the touched
model pages, the tensor arena and XNNPACK's packed weights; it is a measure of this runtime on
this machine, not of a microcontroller build.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import pathlib
import re
import subprocess
import sys
import time
from typing import Any

import numpy as np

from edgepipe.contracts import artifacts
from edgepipe.contracts.litert import invoke_each

# Flex ops are TensorFlow kernels wrapped as TFLite custom ops; the plain runtime lacks them.
FLEX_PREFIX = "Flex"


@dataclasses.dataclass(frozen=True)
class Run:
    """The interpreter's outputs over a set of inputs, and how long each invoke() took."""

    outputs: np.ndarray  # float32 [N, classes or targets], dequantized when the output is int
    invoke_seconds: np.ndarray  # float64 [N], one entry per timed invoke()
    input_dtype: str
    output_dtype: str
    num_threads: int


# /proc/cpuinfo flags that decide how fast quantized and float kernels run.
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                "amx_tile", "amx_int8", "asimd", "asimddp", "i8mm", "sve")


def all_cores() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_description(cpuinfo: str | None = None) -> dict:
    """{"model", "cores", "features": [relevant flags present], "int8_dot_product": bool}.

    Read from /proc/cpuinfo (x86 "flags", ARM "Features"); elsewhere the features are empty
    and "model" says that they are unknown.
    """
    if cpuinfo is None:
        path = pathlib.Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.is_file() else ""
    model = re.search(r"^(?:model name|Hardware|CPU part)\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    flags_line = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    features = [name for name in CPU_FEATURES if name in flags]
    dot_product = bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & flags)
    return {
        "model": model.group(1).strip() if model else "unknown (no /proc/cpuinfo)",
        "cores": all_cores(),
        "features": features,
        "int8_dot_product": dot_product,
    }


def _proc_status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", pathlib.Path("/proc/self/status").read_text(),
                          re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Make VmHWM equal the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


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


# Custom ops LiteRT, MediaPipe and the Task Library register with their builtins.
RUNTIME_CUSTOM_OPS = ("TFLite_Detection_PostProcess",)


def builtin_only(names: list[str]) -> bool:
    """True when every op is a TFLite builtin (or a custom op the runtime has built in, the
    detection postprocess): no Flex (Select TF) op and no other custom op."""
    from ai_edge_litert import schema_py_generated as schema

    builtin_names = {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")}
    builtin_names.update(RUNTIME_CUSTOM_OPS)
    return all(name in builtin_names and not name.startswith(FLEX_PREFIX) for name in names)


def run(
    model_content: bytes,
    inputs: np.ndarray,
    num_threads: int = 1,
    warmup: int = 5,
    name: str = "model",
) -> Run:
    """Invoke the model once per row of `inputs` (float32 raw values, or int32 token ids) at
    batch size 1.

    Quantized integer inputs (int8/uint8 with a scale) are quantized with the input tensor's
    (scale, zero_point); unquantized integer inputs (token ids) are fed as they are. Integer
    outputs are dequantized with the output's (scale, zero_point). Variable tensors (an LSTM's
    state) are reset before every example, so each is independent, as in the Keras model. Only
    invoke() is timed, after `warmup` untimed invokes, so the latencies exclude copying data in
    and out.
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
    for _ in range(warmup):
        invoke_each(interpreter, inputs[:1], name)
    seconds = np.empty(len(inputs), dtype=np.float64)
    outputs = invoke_each(interpreter, inputs, name, seconds)
    return Run(
        outputs=outputs,
        invoke_seconds=seconds,
        input_dtype=np.dtype(input_detail["dtype"]).name,
        output_dtype=np.dtype(output_detail["dtype"]).name,
        num_threads=num_threads,
    )


def predict(model_content: bytes, inputs: np.ndarray, workers: int = 1,
            name: str = "model") -> np.ndarray:
    """Float32 outputs of one batch-1 invoke per row of `inputs`, the rows split among
    `workers` one-thread interpreters running at once (invoke() releases the GIL): the same
    outputs as one interpreter, in a fraction of the time on a multi-core CPU. Used for
    accuracy over the whole test split; latency is timed apart (`run`), with nothing else
    running in this process."""
    from concurrent.futures import ThreadPoolExecutor

    from ai_edge_litert.interpreter import Interpreter

    chunks = [chunk for chunk in np.array_split(inputs, max(1, workers)) if len(chunk)]

    def invoke(chunk: np.ndarray) -> np.ndarray:
        interpreter = Interpreter(model_content=model_content, num_threads=1)
        interpreter.allocate_tensors()
        return invoke_each(interpreter, chunk, name)

    with ThreadPoolExecutor(max(1, len(chunks))) as pool:
        found = list(pool.map(invoke, chunks)) if len(chunks) > 1 else [
            run(model_content, inputs, warmup=0, name=name).outputs]
    if not isinstance(found[0], dict):
        return np.concatenate(found)
    from edgepipe.contracts import litert  # a detector's outputs, named by the op's roles

    joined = {key: np.concatenate([part[key] for part in found]) for key in found[0]}
    return litert.detections_by_role(joined, litert.detection_roles(model_content))


def peak_memory_bytes(model_path, num_threads: int = 1) -> int | None:
    """Peak resident-memory growth of loading and first invoking the model in a fresh process.

    None where /proc is unavailable (not Linux) or the probe fails: unknown, not zero.
    """
    if not pathlib.Path("/proc/self/clear_refs").exists():
        return None
    probe = subprocess.run(
        [sys.executable, __file__, str(model_path), str(num_threads)],
        capture_output=True, text=True, check=False,
    )
    last = probe.stdout.strip().splitlines()[-1:] or [""]
    return int(last[0]) if probe.returncode == 0 and last[0].isdigit() else None


def _probe_peak_memory(model_path: str, num_threads: int) -> int | None:
    from ai_edge_litert.interpreter import Interpreter

    if not _reset_peak_rss():
        return None
    before = _proc_status_kib("VmRSS")
    interpreter = Interpreter(model_path=model_path, num_threads=num_threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    peak = _proc_status_kib("VmHWM")
    return None if before is None or peak is None else max(0, peak - before) * 1024


# --- one variant's variants.json record ---------------------------------------------------

def variant_record(content: bytes, variant: str, ops: list[str], test_inputs, scorer,
                   output_dir: pathlib.Path, log: logging.Logger,
                   latency_examples: int | None = None) -> dict[str, Any]:
    """The variants.json record of one written variant: the task's scores (scoring.py: accuracy
    and agreement, or MAE and the distance to Keras's values) over every test input (the
    inputs split among one-thread interpreters on every core), batch-1 latency with one
    interpreter thread and with every core over the first `latency_examples` test inputs
    (None: all of them)."""
    cores = all_cores()
    timed = test_inputs[:latency_examples] if latency_examples else test_inputs
    try:
        outputs = predict(content, test_inputs, workers=cores, name=f"variant {variant!r}")
        one = run(content, timed, num_threads=1, name=f"variant {variant!r}")
        every = one if cores == 1 else run(content, timed, num_threads=cores,
                                           name=f"variant {variant!r}")
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(f"TFLite variant {variant!r} converted but failed on the LiteRT "
                           f"interpreter: {error}") from error
    scores = scorer(outputs)
    path = output_dir / artifacts.variant_file(variant)
    record = {
        "name": variant, "path": path.name, "metadata": f"{variant}.json",
        "size_bytes": len(content),
        "gzip_size_bytes": len(gzip.compress(content, compresslevel=9, mtime=0)),
        **scores,
        **_latencies(one.invoke_seconds, ""), **_latencies(every.invoke_seconds, "_all_cores"),
        "threads_all_cores": cores, "peak_memory_bytes": peak_memory_bytes(path),
        "ops": ops, "builtin_only": builtin_only(ops),
        "input_dtype": one.input_dtype, "output_dtype": one.output_dtype,
        "num_examples": int(len(test_inputs)), "latency_examples": int(len(timed)),
        "cpu": cpu_description(),
    }
    log.info(
        "quantize: %-13s %9d bytes (gzip %9d)  %s  p50 %.3f ms "
        "(1 thread) %.3f ms (%d threads)  %s", variant, record["size_bytes"],
        record["gzip_size_bytes"], scorer.describe(scores),
        record["latency_ms_p50"], record["latency_ms_p50_all_cores"], cores,
        "builtin ops only" if record["builtin_only"] else "NEEDS NON-BUILTIN OPS")
    return record


def _latencies(seconds: np.ndarray, suffix: str) -> dict[str, float]:
    milliseconds = seconds * 1000.0
    return {f"latency_ms_p50{suffix}": round(float(np.percentile(milliseconds, 50)), 5),
            f"latency_ms_p99{suffix}": round(float(np.percentile(milliseconds, 99)), 5)}


if __name__ == "__main__":  # the fresh process of peak_memory_bytes
    measured = _probe_peak_memory(sys.argv[1], int(sys.argv[2]))
    print("" if measured is None else measured)
