"""Batch-1 latency of the box detector (edgepipe.models.ssd, default options, 5 classes) on
LiteRT for square inputs from 96x96 to 320x320, float32 and int8, with the
TFLite_Detection_PostProcess op at its end, on 1 and 2 threads.

    .venv/bin/python benchmarks/detection_latency.py [--sizes 96 128 160 224 320] [--runs 100]

The models are untrained (latency does not depend on the weights, except the postprocess:
with untrained weights every anchor scores about 1/6, above the 0.01 threshold, so
non-max suppression sees every anchor: the worst case). The representative set is random
pixels. Prints the CPU and its flags: int8 is fast only where the CPU has integer
dot-product instructions.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

CLASSES = ["T-shirt/top", "Trouser", "Sandal", "Bag", "Ankle boot"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160, 224, 320])
    parser.add_argument("--runs", type=int, default=100)
    arguments = parser.parse_args(argv)
    from edgepipe.components.quantize import detection_convert, measure
    from edgepipe.components.shared import task_heads
    from edgepipe.models import ssd

    cpu = measure.cpu_description()
    print(f"CPU {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['features'])}")
    print(f"{'input':>9} {'anchors':>8} {'params':>8} {'variant':>8} {'KB':>7} "
          f"{'p50 1 thread ms':>16} {'p50 2 threads ms':>17}")
    rng = np.random.default_rng(0)
    config = type("Config", (), {"model": "ssd", "model_options": {}})
    for size in arguments.sizes:
        model = ssd.build([size, size, 3], len(CLASSES), 110.0, 3000.0)
        info = {"class_names": CLASSES, **task_heads.detector_spec(model, config)}
        inputs = rng.uniform(0, 255, (arguments.runs, size, size, 3)).astype(np.float32)
        for variant in ("float32", "int8"):
            content = detection_convert.convert(model, variant, inputs[:20], info)
            one = measure.run(content, inputs, num_threads=1, warmup=10)
            two = measure.run(content, inputs, num_threads=2, warmup=10)
            print(f"{size:>4}x{size:<4} {int(model.output_shape[1]):>8} "
                  f"{model.count_params():>8} {variant:>8} {len(content) / 1024:>7.0f} "
                  f"{np.median(one.invoke_seconds) * 1e3:>16.2f} "
                  f"{np.median(two.invoke_seconds) * 1e3:>17.2f}", flush=True)


if __name__ == "__main__":
    main()
