"""Training throughput per precision (float32, mixed_bfloat16) of the shipped models, here.

For each model of a shipped config (the config's model, options and batch size; inputs of the
shape its data has) and each precision, a fresh process builds the model under that Keras
dtype policy, compiles it as the train stage does (Adam, sparse cross-entropy) and trains on
one fixed batch repeated (the input pipeline is measured by input_pipeline.py; this measures
the model's compute): warm-up steps, then timed steps. Rounds alternate the order of the
precisions so that other load on the machine affects both alike; the median of the rounds is
printed with the ratio bfloat16 / float32 and what `[train] precision = "auto"` picks.

`--env TF_ENABLE_ONEDNN_OPTS=0` runs the children without oneDNN: TensorFlow's Eigen kernels
then emulate bfloat16, as on a CPU without AVX512_BF16/AMX (float32 runs on Eigen too), and
"auto" reads that setting as well. (ONEDNN_MAX_CPU_ISA=AVX2 is no such emulation: oneDNN's
bf16 convolution then fails to build.) Prints the CPU and the load average with the figures.

    .venv/bin/python benchmarks/precision_throughput.py
    .venv/bin/python benchmarks/precision_throughput.py --models cnn_bn --env TF_ENABLE_ONEDNN_OPTS=0
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgepipe.components.train import precision as precision_choice  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")
# model -> (shipped config, input shape, input dtype, classes, extra builder arguments): the
# shapes of the data those configs train on (Fashion-MNIST 28x28x1; JapaneseVowels 29 steps
# of 12 channels; fortunes 64 tokens; breast cancer 30 features).
MODELS = {
    "cnn": ("quickstart.toml", (28, 28, 1), "uint8", 10, {}),
    "cnn_bn": ("fashion_mnist_cnn.toml", (28, 28, 1), "uint8", 10, {}),
    "lstm": ("japanese_vowels_lstm.toml", (29, 12), "float32", 9, {}),
    "text_lstm": ("fortunes_text_lstm.toml", (64,), "int32", 4, {"vocabulary_size": 100}),
    "mlp": ("breast_cancer_mlp.toml", (30,), "float32", 2, {}),
}


RECURRENT = ("lstm", "text_lstm")  # what precision.is_recurrent finds in their models


def child(model_name: str, policy: str, seconds: float) -> dict:
    """One measurement in this (fresh) process: examples per second of model.fit steps."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tensorflow as tf

    from edgepipe import models
    from edgepipe.components.shared import model_builder
    from edgepipe.models.keras import keras

    config_name, shape, dtype, classes, extra = MODELS[model_name]
    train = tomllib.loads((REPO / "configs" / config_name).read_text())["train"]
    batch = int(train.get("batch_size", 64))
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(policy)
    arguments = {"input_shape": list(shape), "num_classes": classes, **extra}
    if "vocabulary_size" not in extra:
        arguments.update(mean=0.0 if len(shape) > 2 else [0.0] * shape[-1],
                         variance=1.0 if len(shape) > 2 else [1.0] * shape[-1])
    model = models.build(model_name, **models.data_arguments(model_name, arguments),
                         **train.get("model_options", {}))
    settings = type("Settings", (), {"lr_schedule": "constant", "label_smoothing": 0.0})
    model_builder.compile_model(keras, model, settings, 1e-3, 1)
    rng = np.random.default_rng(0)
    high = {"uint8": 256, "int32": extra.get("vocabulary_size", 2)}.get(dtype)
    inputs = (rng.integers(0, high, (batch, *shape)) if high else
              rng.standard_normal((batch, *shape))).astype(dtype)
    labels = rng.integers(0, classes, (batch,)).astype("int32")
    data = tf.data.Dataset.from_tensors((inputs, labels)).repeat()
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # traces, warms the kernels
    warmup = time.perf_counter() - started
    probe = time.perf_counter()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    per_step = (time.perf_counter() - probe) / 3
    steps = max(3, int(seconds / per_step))
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    elapsed = time.perf_counter() - started
    return {"model": model_name, "precision": policy, "batch": batch, "steps": steps,
            "examples_per_second": steps * batch / elapsed, "warmup_seconds": warmup}


def measure(model_name: str, policy: str, seconds: float) -> dict:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, __file__, "--child", model_name, policy,
                           str(seconds)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{model_name} {policy} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per run")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the children (and of the \"auto\" pick), e.g. "
                             "TF_ENABLE_ONEDNN_OPTS=0")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], float(args.child[2]))))
        return 0
    for setting in args.env:
        key, _, value = setting.partition("=")
        os.environ[key] = value  # the children inherit it; "auto" below reads it too
    cpu = precision_choice.read_cpu()
    bf16 = sorted(flag for flag in cpu.flags if "bf16" in flag or flag.startswith("amx"))
    print(f"CPU: {cpu.name} ({cpu.machine}), {os.cpu_count()} cores, bf16 flags: "
          f"{' '.join(bf16) or 'none'}; environment: {' '.join(args.env) or '(as is)'}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    names = [name for name in args.models.split(",") if name]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    rates: dict[tuple[str, str], list[float]] = {}
    batches = {}
    for round_index in range(args.rounds):
        order = PRECISIONS if round_index % 2 == 0 else PRECISIONS[::-1]
        for name in names:
            for policy in order:
                result = measure(name, policy, args.seconds)
                rates.setdefault((name, policy), []).append(result["examples_per_second"])
                batches[name] = result["batch"]
                print(f"  round {round_index + 1}: {name:9} {policy:14} "
                      f"{result['examples_per_second']:9,.0f} examples/s", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{'model':10} {'batch':>5} {'float32 ex/s':>13} {'bf16 ex/s':>11} "
          f"{'bf16/f32':>9}  {'auto picks':14} (median of {args.rounds} rounds)")
    for name in names:
        f32, bf16_rate = (statistics.median(rates[(name, p)]) for p in PRECISIONS)
        pick = precision_choice.choose("auto", cpu, [], recurrent=name in RECURRENT).precision
        print(f"{name:10} {batches[name]:5} {f32:13,.0f} {bf16_rate:11,.0f} "
              f"{bf16_rate / f32:8.2f}x  {pick}")
    for recurrent in (False, True):
        choice = precision_choice.choose("auto", cpu, [], recurrent=recurrent)
        print(f"\n[train] precision = \"auto\" picks {choice.precision} here for "
              f"{'recurrent' if recurrent else 'other'} models: {choice.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
