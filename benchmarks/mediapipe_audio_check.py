"""MediaPipe's AudioClassifier on edgepipe's pushed keyword model, against edgepipe's own LiteRT
predictions.

    .venv/bin/python benchmarks/mediapipe_audio_check.py [configs/speech_keywords_dscnn.toml]

Runs the pipeline (cached stages are reused), then classifies every test clip with MediaPipe
Tasks' AudioClassifier (mediapipe 1.2.x from PyPI, in the venv of its own that
benchmarks/mediapipe_check.py builds once: it cannot be installed beside TensorFlow 2.21) on
the pushed model.tflite as it is, and on every other variant the quantize stage found
MediaPipe-compatible: float samples at the model's rate, read from the model's metadata by
MediaPipe itself. Prints, per model, top-1 agreement with edgepipe's LiteRT interpreter on the
same clips, the largest score difference, whether every category name MediaPipe returns is the
class at that index, and both accuracies. Target: agreement >= 99 %, right names.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import mediapipe_check  # noqa: E402  (the venv, the pipeline run, the comparison)

CONFIG = ROOT / "configs" / "speech_keywords_dscnn.toml"
WORKER = pathlib.Path(__file__).with_name("mediapipe_audio_worker.py")


def check(config: pathlib.Path, python: pathlib.Path) -> list[dict]:
    from edgepipe.components.quantize import measure
    from edgepipe.components.shared import examples_io
    from edgepipe.contracts import artifacts, model_inputs

    outputs = mediapipe_check.pipeline_outputs(config)
    models = mediapipe_check.models_to_check(outputs)
    model_json = artifacts.read_model_info(outputs["version"])
    test = examples_io.load_numpy(outputs["examples"], "test")
    prepared = model_inputs.prepare(model_json, test["audio"])
    with tempfile.TemporaryDirectory(prefix="edgepipe-mediapipe-audio-") as folder:
        clips = pathlib.Path(folder) / "clips.npy"
        np.save(clips, prepared)
        jobs = [{"model": str(path), "clips": str(clips),
                 "sample_rate": int(model_json["sample_rate"])} for path in models.values()]
        done = subprocess.run([str(python), str(WORKER)], input=json.dumps({"jobs": jobs}),
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"MediaPipe failed on {config.name}:\n{done.stderr[-3000:]}")
    rows = []
    for (name, path), got in zip(models.items(), json.loads(done.stdout)["results"]):
        expected = measure.run(path.read_bytes(), prepared, warmup=0).outputs
        rows.append({"config": config.name, "kind": "audio",
                     **mediapipe_check.compare(name, got, expected, test["label"],
                                               model_json["class_names"])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", type=pathlib.Path, default=CONFIG)
    arguments = parser.parse_args(argv)
    rows = check(arguments.config, mediapipe_check.mediapipe_python())
    failed = mediapipe_check.print_rows(rows, "AudioClassifier")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
