"""What a variant needs on a phone, checked offline: delegate coverage, MediaPipe, benchmark.

Each check says exactly what it is, because some obvious candidates do not work:

- "xnnpack": the ops this LiteRT build's XNNPACK delegate (the default CPU accelerator on
  Android, iOS and desktop) takes over, read from the interpreter's own execution plan after
  it applied the delegate: the ops left outside run on LiteRT's reference CPU kernels.
  A real check, of this package's XNNPACK build on this CPU.
- "gpu": the op TYPES against the list of ops the GPU delegate has kernels for (the switch of
  TensorFlow's lite/tools/versioning/gpu_compatibility.cc, copied below). Per-op rules (strides,
  broadcasting, index ranks, activations) are NOT checked, so "compatible" means "no op type
  without a GPU kernel", not a guarantee; the authoritative check is the GPU delegate on the
  device (benchmark_model --use_gpu=true, docs/use-in-an-app.md). TensorFlow's
  `tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)` is no help: the per-op
  GPU check is compiled out of the pip builds, and it calls every model compatible.
- "nnapi", "coreml": no offline checker ships in the installed packages (tflite-support's
  compatibility checkers are not in any wheel); recorded as unknown, never as compatible.
- "mediapipe": every rule of MediaPipe Tasks' classifiers the file breaks (mediapipe_compat).
- "benchmark": LiteRT's own benchmark tool as installed (`litert-benchmark`, the Python
  CompiledModel benchmark of ai-edge-litert; the C++ benchmark_model is not in the wheel),
  in a subprocess; its milliseconds come rounded to 0.01 ms. It cannot load models with
  variable tensors (fused LSTMs) and feeds random int32 inputs that overflow an embedding, so
  those are recorded with its error instead.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import tempfile
from typing import Any

from edgepipe.components.quantize import mediapipe_compat

# Op types with a case in CheckGpuDelegateCompatibility (gpu_compatibility.cc, TensorFlow 2.21).
GPU_DELEGATE_OPS = frozenset("""
ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM
DENSIFY DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU
EMBEDDING_LOOKUP EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER
GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGISTIC LSTM MAXIMUM
MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE
REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT
SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE STABLEHLO_CLAMP STRIDED_SLICE SUB SUM TANH TILE
TRANSPOSE TRANSPOSE_CONV
""".split())

GPU_CHECK = ("op types against the GPU delegate's op list (gpu_compatibility.cc); per-op "
             "parameter rules not checked: confirm on a device")
XNNPACK_CHECK = "ops the XNNPACK delegate of this LiteRT build took over, on this CPU"
NO_CHECKER = "no offline checker in the installed packages: unknown"
BENCHMARK_TOOL = "ai_edge_litert.tools.benchmark_litert_model"


def check(content: bytes, path: pathlib.Path, ops: list[str],
          benchmark: bool = True) -> dict[str, Any]:
    """The device checks of one written variant (`path` holds `content`, whose op names are
    `ops`)."""
    unsupported = sorted(op for op in ops if op not in GPU_DELEGATE_OPS)
    problems = mediapipe_compat.problems(content)
    return {
        "xnnpack": xnnpack_coverage(content),
        "gpu": {"compatible": not unsupported, "unsupported_ops": unsupported,
                "check": GPU_CHECK},
        "nnapi": {"compatible": None, "check": NO_CHECKER},
        "coreml": {"compatible": None, "check": NO_CHECKER},
        "mediapipe": {"compatible": not problems, "problems": problems},
        "benchmark": run_benchmark(path) if benchmark else {"ran": False,
                                                            "error": "[quantize] benchmark_tool "
                                                                     "is false"},
    }


def xnnpack_coverage(content: bytes) -> dict[str, Any]:
    """{"ops", "delegated", "fully", "not_delegated": [op names]} from the execution plan of
    an interpreter that applied the XNNPACK delegate (LiteRT's default)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    nodes = interpreter._get_ops_details()  # the delegate's nodes are listed after the ops
    original = [node for node in nodes if node["op_name"] != "DELEGATE"]
    producer = {int(tensor): node["index"] for node in original for tensor in node["outputs"]}
    inputs_of = {node["index"]: [int(t) for t in node["inputs"] if t >= 0] for node in original}
    delegated: set[int] = set()
    for node in nodes:
        if node["op_name"] != "DELEGATE":
            continue
        boundary = {int(tensor) for tensor in node["inputs"]}
        frontier = [int(tensor) for tensor in node["outputs"]]
        while frontier:  # walk back from the partition's outputs to its inputs
            tensor = frontier.pop()
            if tensor in boundary or tensor not in producer or producer[tensor] in delegated:
                continue
            delegated.add(producer[tensor])
            frontier += inputs_of[producer[tensor]]
    left = sorted({node["op_name"] for node in original if node["index"] not in delegated})
    return {"ops": len(original), "delegated": len(delegated),
            "fully": len(delegated) == len(original), "not_delegated": left,
            "check": XNNPACK_CHECK}


def run_benchmark(path: pathlib.Path, runs: int = 100) -> dict[str, Any]:
    """LiteRT's benchmark tool on the file, one thread: its latencies in ms, or its error."""
    with tempfile.TemporaryDirectory(prefix="edgepipe-benchmark-") as folder:
        result = pathlib.Path(folder, "result.json")
        done = subprocess.run(
            [sys.executable, "-m", BENCHMARK_TOOL, "--model", str(path), "--num_runs",
             str(runs), "--num_threads", "1", "--result_json", str(result)],
            capture_output=True, text=True, check=False)
        if done.returncode != 0 or not result.is_file():
            return {"ran": False, "tool": "litert-benchmark", "error": _error_line(done)}
        measured = json.loads(result.read_text())
    latency = measured.get("latency", {})
    return {"ran": True, "tool": "litert-benchmark", "runs": latency.get("num_runs"),
            "median_ms": latency.get("median_ms"), "avg_ms": latency.get("avg_ms"),
            "p95_ms": latency.get("p95_ms"), "init_ms": latency.get("init_ms"),
            "fully_accelerated": measured.get("fully_accelerated")}


def _error_line(done: subprocess.CompletedProcess) -> str:
    """What made the benchmark fail: LiteRT's ERROR lines (e.g. "gather index out of bounds"),
    else the Python exception, else the last line (warnings about missing NPU plugins are
    noise)."""
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = list(dict.fromkeys(line.removeprefix("ERROR:").strip() for line in lines
                                if line.startswith("ERROR:") and "plugin" not in line))
    if errors:
        return "; ".join(errors[:3])[:300]
    raised = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    return (raised or lines or [f"exit status {done.returncode}"])[-1][-300:]


def summary(checks: dict[str, Any]) -> str:
    """One log line: XNNPACK coverage, GPU op types, MediaPipe, benchmark median."""
    xnnpack, gpu, bench = checks["xnnpack"], checks["gpu"], checks["benchmark"]
    parts = [f"XNNPACK {xnnpack['delegated']}/{xnnpack['ops']} ops",
             "GPU op types ok" if gpu["compatible"]
             else f"GPU lacks {','.join(gpu['unsupported_ops'])}",
             "MediaPipe ok" if checks["mediapipe"]["compatible"] else "not for MediaPipe",
             f"litert-benchmark median {bench['median_ms']} ms" if bench.get("ran")
             else "litert-benchmark did not run"]
    return "; ".join(parts)
