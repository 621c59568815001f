"""MediaPipe Tasks on edgepipe's pushed models, against edgepipe's own LiteRT predictions.

    .venv/bin/python benchmarks/mediapipe_check.py            (runs both pipelines if needed)
    .venv/bin/python benchmarks/mediapipe_check.py configs/quickstart_rgb.toml

For each config (default: configs/quickstart_rgb.toml, an RGB-input CNN, and
configs/fortunes_text_lstm_mediapipe.toml, the fortunes text LSTM with post padding and an
unrolled LSTM) it runs the pipeline (cached stages are reused), then classifies the whole test
split with MediaPipe's ImageClassifier or TextClassifier (mediapipe 1.2.x from PyPI, in a venv
of its own that this script builds once under <project venv>/edgepipe-readers/: it cannot be
installed beside TensorFlow 2.21) on the pushed model.tflite, and on every other variant the
quantize stage found MediaPipe-compatible, exactly as an app would: the file as it is, RGB
PNG images, lowercased texts, one classifier for all inputs. It prints, per model, top-1
agreement with edgepipe's LiteRT interpreter predictions on the same inputs, the largest score
difference, whether every category name MediaPipe returns is the class at that index, and
both accuracies. Target: agreement >= 99 %.
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

import numpy as np  # noqa: E402

CONFIGS = (ROOT / "configs" / "quickstart_rgb.toml",
           ROOT / "configs" / "fortunes_text_lstm_mediapipe.toml")
MEDIAPIPE = "mediapipe==1.2.2"
VENV = pathlib.Path(sys.prefix) / "edgepipe-readers" / "mediapipe-1.2.2"
WORKER = pathlib.Path(__file__).with_name("mediapipe_worker.py")


def mediapipe_python() -> pathlib.Path:
    """The MediaPipe venv's python, built the first time (a few minutes, about 600 MB)."""
    python = VENV / "bin" / "python"
    if not (VENV / ".complete").is_file():
        base = getattr(sys, "_base_executable", sys.executable)
        print(f"building {VENV} with {MEDIAPIPE} ...", flush=True)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", MEDIAPIPE], check=True)
        (VENV / ".complete").write_text(MEDIAPIPE + "\n")
    return python


def pipeline_outputs(config: pathlib.Path) -> dict:
    """Run (or reuse) the pipeline; its pushed version, TFLite folder and Examples."""
    from edgepipe import api

    result = api.run(config)
    if result.status != "succeeded":
        raise SystemExit(f"{config}: the pipeline ended {result.status}; see its run summary.")
    push = next(stage for stage in result.summary["stages"] if stage["name"] == "push")
    if not push["metrics"].get("pushed"):
        raise SystemExit(f"{config}: nothing was pushed ({push['metrics'].get('reason')}).")
    return {"version": pathlib.Path(push["metrics"]["path"]),
            "tflite": result.artifacts["quantize"]["tflite"],
            "examples": result.artifacts["ingest"]["examples"]}


def models_to_check(outputs: dict) -> dict[str, pathlib.Path]:
    """The pushed model.tflite, then every other variant MediaPipe is expected to take."""
    from edgepipe.contracts import artifacts

    models = {"pushed model.tflite": outputs["version"] / "model.tflite"}
    for record in artifacts.read_variants(outputs["tflite"]):
        if record.get("device", {}).get("mediapipe", {}).get("compatible"):
            models[record["name"]] = outputs["tflite"] / record["path"]
    return models


def test_inputs(outputs: dict, folder: pathlib.Path):
    """(kind, MediaPipe inputs, edgepipe's prepared model inputs, labels, model.json)."""
    from PIL import Image

    from edgepipe.components.shared import examples_io
    from edgepipe.contracts import artifacts, model_inputs

    model_json = artifacts.read_model_info(outputs["version"])
    test = examples_io.load_numpy(outputs["examples"], "test")
    feature = model_json["input_feature"]
    prepared = model_inputs.prepare(model_json, test[feature])
    if feature == "text":
        return "text", [str(text) for text in test["text"]], prepared, test["label"], model_json
    paths = []
    for index, pixels in enumerate(prepared.astype(np.uint8)):
        paths.append(str(folder / f"{index:05d}.png"))
        Image.fromarray(pixels if pixels.shape[-1] == 3 else pixels[..., 0]).save(paths[-1])
    return "image", paths, prepared, test["label"], model_json


def compare(name: str, got: list, expected: np.ndarray, labels, class_names) -> dict:
    scores = np.zeros_like(expected)
    names_right = True
    for row, categories in enumerate(got):
        for index, category, score in categories:
            scores[row, index] = score
            names_right &= category == class_names[index]
    return {"model": name, "examples": len(expected),
            "agreement": float(np.mean(scores.argmax(1) == expected.argmax(1))),
            "max_score_diff": float(np.max(np.abs(scores - expected))),
            "names_right": bool(names_right),
            "mediapipe_accuracy": float(np.mean(scores.argmax(1) == labels)),
            "litert_accuracy": float(np.mean(expected.argmax(1) == labels)),
            "first": [f"{c[1]} {c[2]:.3f}" for c in got[0][:3]]}


def check(config: pathlib.Path, python: pathlib.Path) -> list[dict]:
    from edgepipe.components.quantize import measure

    outputs = pipeline_outputs(config)
    models = models_to_check(outputs)
    with tempfile.TemporaryDirectory(prefix="edgepipe-mediapipe-") as folder:
        kind, inputs, prepared, labels, model_json = test_inputs(outputs, pathlib.Path(folder))
        jobs = [{"model": str(path), "kind": kind, "inputs": inputs} for path in models.values()]
        done = subprocess.run([str(python), str(WORKER)], input=json.dumps({"jobs": jobs}),
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"MediaPipe failed on {config.name}:\n{done.stderr[-3000:]}")
    results = json.loads(done.stdout)["results"]
    rows = []
    for (name, path), got in zip(models.items(), results):
        expected = measure.run(path.read_bytes(), prepared, warmup=0).outputs
        rows.append({"config": config.name, "kind": kind,
                     **compare(name, got, expected, labels, model_json["class_names"])})
    return rows


def print_rows(rows: list[dict], classifier: str) -> list[dict]:
    """Print the comparison table; return the rows that miss the target."""
    print(f"\nMediaPipe Tasks ({MEDIAPIPE}) {classifier} against edgepipe's LiteRT "
          "predictions, test split:")
    print(f"{'config':38} {'model':22} {'n':>5} {'agree':>7} {'max diff':>9} {'names':>6} "
          f"{'acc MP':>7} {'acc LiteRT':>10}  first result")
    for row in rows:
        print(f"{row['config']:38} {row['model']:22} {row['examples']:5d} "
              f"{row['agreement']:7.2%} {row['max_score_diff']:9.2e} "
              f"{'ok' if row['names_right'] else 'WRONG':>6} {row['mediapipe_accuracy']:7.2%} "
              f"{row['litert_accuracy']:10.2%}  {', '.join(row['first'])}")
    failed = [row for row in rows if row["agreement"] < 0.99 or not row["names_right"]]
    print("target (agreement >= 99 %, right names):",
          "met" if not failed else f"NOT met by {[row['model'] for row in failed]}")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=pathlib.Path, default=list(CONFIGS))
    arguments = parser.parse_args(argv)
    python = mediapipe_python()
    rows = [row for config in arguments.configs for row in check(config, python)]
    failed = print_rows(rows, "ImageClassifier or TextClassifier")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
