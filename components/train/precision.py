"""[train] precision: the compute dtype training uses, and what "auto" picks on this machine.

bfloat16 halves the bytes a layer moves, but it only pays where the hardware computes it:
x86 CPUs with AVX512_BF16 or AMX (oneDNN's bf16 kernels), ARM CPUs with the BF16 extension,
TPUs. Elsewhere TensorFlow emulates it and training gets several times slower (measured:
MEASURED_SLOWDOWN). "auto" therefore picks mixed_bfloat16 only on such hardware and only
for models without recurrent layers (their CPU kernels got slower in bfloat16, measured:
MEASURED_RECURRENT), mixed_float16 on a GPU with Tensor Cores (compute capability >= 7.0),
float32 otherwise, and says why. An explicit choice is kept, but a bfloat16 one on a CPU that
would emulate it is warned about when the config is loaded (`slow_choice_warning`).

The CPU is read from /proc/cpuinfo (x86 "flags", ARM "Features"). On x86 the bf16 kernels are
oneDNN's: with TF_ENABLE_ONEDNN_OPTS=0 TensorFlow's Eigen kernels emulate bfloat16, and with
ONEDNN_MAX_CPU_ISA below the bf16 instruction sets oneDNN cannot build its bf16 convolution
(measured), so either counts as no native bfloat16.
No TensorFlow here: the config loader calls this; the train stage passes the devices in.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import platform
from typing import Annotated, Literal

import pydantic

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
CPUINFO = pathlib.Path("/proc/cpuinfo")
# x86 flags (as /proc/cpuinfo spells them) and the ARM feature that compute bfloat16 natively.
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ARM_BF16_FEATURE = "bf16"
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) at or above its bf16 kernels: any other cap hides them.
ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                    "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX",
                    "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT", "")
# What emulated bfloat16 cost, measured (docs/measured.md#training-precision): cnn_bn, batch
# 256, on a 2-core AMD EPYC without AVX-512 (issue 26), and with oneDNN capped at AVX2.
MEASURED_SLOWDOWN = ("8.2x slower than float32 for cnn_bn on a 2-core AMD EPYC without "
                     "AVX-512 (26 vs 212 images/s, batch 256)")
# ... and what it cost an LSTM where the CPU has it (benchmarks/precision_throughput.py).
MEASURED_RECURRENT = ("TensorFlow's LSTM kernels ran 1.6-4.0x slower in bfloat16 than in "
                      "float32 on an AMD EPYC with AVX512_BF16 (lstm 513 vs 2,078 and 842 vs "
                      "1,374 examples/s, two rounds)")
GPU_FLOAT16_CAPABILITY = (7, 0)  # Tensor Cores: where Keras's mixed_float16 pays


@dataclasses.dataclass(frozen=True)
class Cpu:
    name: str
    machine: str  # platform.machine(): x86_64, aarch64, arm64, ...
    flags: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Choice:
    requested: str  # what the config says ("auto" or an explicit precision)
    precision: str  # the Keras dtype policy training uses
    reason: str

    def properties(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def warn_if_slow(requested: str) -> str:
    """At config load: log the slow_choice_warning of an explicit choice on this CPU."""
    warning = slow_choice_warning(requested, read_cpu())
    if warning:
        logging.getLogger("edgepipe.train").warning(warning)
    return requested


# The [train] precision field: "auto" (the default) or an explicit Keras dtype policy.
Setting = Annotated[Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"],
                    pydantic.AfterValidator(warn_if_slow)]


def resolve(tf, keras, config, strategy: str, build, log):
    """(the train config with its precision resolved, the Choice), the choice logged."""
    choice = choose_here(tf, keras, config.precision, strategy, build)
    log.info("precision %s (%s): %s", choice.precision, choice.requested, choice.reason)
    return config.model_copy(update={"precision": choice.precision}), choice


def choose_here(tf, keras, requested: str, strategy: str, build) -> Choice:
    """`choose` for this process: its CPU, the GPUs TensorFlow sees, a TPU strategy; `build()`
    returns the model (float32), looked at only when "auto" weighs bfloat16 on this CPU."""
    gpus = [tf.config.experimental.get_device_details(gpu).get("compute_capability")
            for gpu in tf.config.list_physical_devices("GPU")]
    cpu, tpu = read_cpu(), strategy.startswith("tpu")
    looks = requested == "auto" and not (tpu or gpus) and native_bfloat16(cpu)
    if looks:
        recurrent = is_recurrent(keras, build())
        keras.backend.clear_session()  # the real model is built afresh, with the same names
    return choose(requested, cpu, gpus, tpu, recurrent=bool(looks and recurrent))


def is_recurrent(keras, model) -> bool:
    """Whether the model has an RNN layer (LSTM, GRU, ..., also inside Bidirectional)."""
    return any(isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))
               for layer in model.submodules)


def read_cpu(cpuinfo: pathlib.Path | None = None) -> Cpu:
    """This machine's CPU model and feature flags (none where /proc/cpuinfo is absent)."""
    try:
        text = (cpuinfo or CPUINFO).read_text(errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}  # the first processor's lines: all cores report the same
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    name = fields.get("model name") or fields.get("hardware") or platform.processor()
    flags = frozenset((fields.get("flags") or fields.get("features") or "").split())
    return Cpu(name or "unknown CPU", platform.machine().lower(), flags)


def native_bfloat16(cpu: Cpu) -> str | None:
    """The feature that makes bfloat16 native on this CPU ("avx512_bf16", "amx_bf16",
    "bf16 (ARM)"), or None when TensorFlow would emulate it."""
    if cpu.machine in ("aarch64", "arm64"):
        return "bf16 (ARM)" if ARM_BF16_FEATURE in cpu.flags else None
    if _onednn_hidden():
        return None
    return next((flag for flag in X86_BF16_FLAGS if flag in cpu.flags), None)


def choose(requested: str, cpu: Cpu, gpu_capabilities: list[tuple[int, int] | None],
           tpu: bool = False, recurrent: bool = False) -> Choice:
    """The precision for `requested` ("auto" or explicit) on this hardware, and why.
    `gpu_capabilities`: the CUDA compute capability of each visible GPU (None: unknown);
    `recurrent`: the model has RNN layers, whose CPU kernels are slower in bfloat16."""
    if requested not in PRECISIONS:
        raise ValueError(f"[train] precision {requested!r} is not one of {list(PRECISIONS)}.")
    cpu_text = _describe(cpu)
    if requested != "auto":
        warning = slow_choice_warning(requested, cpu) if not (tpu or gpu_capabilities) else None
        return Choice(requested, requested, f"set in the config{'; ' + warning if warning else ''}")
    if tpu:
        return Choice(requested, "mixed_bfloat16", "a TPU computes bfloat16 natively")
    if gpu_capabilities:
        fast = [capability for capability in gpu_capabilities
                if capability and tuple(capability) >= GPU_FLOAT16_CAPABILITY]
        if len(fast) == len(gpu_capabilities):
            return Choice(requested, "mixed_float16",
                          f"the GPU(s) have Tensor Cores (compute capability "
                          f"{'.'.join(map(str, fast[0]))} >= 7.0): float16 compute")
        return Choice(requested, "float32", "the GPU(s) have no Tensor Cores (compute "
                      "capability < 7.0 or unknown): float16 would not be faster")
    feature = native_bfloat16(cpu)
    if feature and recurrent:
        return Choice(requested, "float32",
                      f"{cpu_text} computes bfloat16 natively ({feature}), but the model is "
                      f"recurrent: {MEASURED_RECURRENT}")
    if feature:
        return Choice(requested, "mixed_bfloat16",
                      f"{cpu_text} computes bfloat16 natively ({feature})")
    return Choice(requested, "float32",
                  f"{cpu_text} has no native bfloat16 ({_missing(cpu)}): bfloat16 would be "
                  f"emulated, {MEASURED_SLOWDOWN}")


def slow_choice_warning(requested: str, cpu: Cpu) -> str | None:
    """A warning for an explicit mixed_bfloat16 on a CPU that would emulate it (None when
    the choice is fine, or runs on a GPU/TPU the caller knows of)."""
    if requested != "mixed_bfloat16" or native_bfloat16(cpu):
        return None
    return (f"[train] precision = \"mixed_bfloat16\" on {_describe(cpu)}, which has no native "
            f"bfloat16 ({_missing(cpu)}): training will be emulated, {MEASURED_SLOWDOWN}. "
            "Kept as configured (it does pay on a TPU); set precision = \"auto\" or "
            "\"float32\" to train at full speed here.")


def _describe(cpu: Cpu) -> str:
    return f"this CPU ({cpu.name}, {cpu.machine})"


def _missing(cpu: Cpu) -> str:
    if cpu.machine in ("aarch64", "arm64"):
        return "no BF16 in its features"
    hidden = _onednn_hidden()
    if hidden and any(flag in cpu.flags for flag in X86_BF16_FLAGS):
        return f"{hidden} leaves its AVX512_BF16/AMX unused"
    return "no AVX512_BF16 or AMX flag"


def _onednn_hidden() -> str | None:
    """The setting that keeps oneDNN's bf16 kernels from running, if any."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false"):
        return "TF_ENABLE_ONEDNN_OPTS=0"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return None if cap in ONEDNN_BF16_ISAS else f"ONEDNN_MAX_CPU_ISA={cap}"
