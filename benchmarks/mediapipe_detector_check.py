"""MediaPipe Tasks' ObjectDetector on edgepipe's pushed box detector, against edgepipe's LiteRT.

    .venv/bin/python benchmarks/mediapipe_detector_check.py [configs/fashion_detection_ssd.toml]

Runs the pipeline (cached stages are reused), then detects on every test image with
MediaPipe's ObjectDetector (mediapipe 1.2.x from PyPI, in the venv benchmarks/mediapipe_check.py
builds: it cannot be installed beside TensorFlow 2.21) loading the pushed model.tflite as it
is: the test images as RGB PNGs, one detector for all of them. Every detection edgepipe's
LiteRT interpreter makes on the same image with a score of at least SCORE must be found by
MediaPipe with the same class name and IoU >= 0.9. Target: >= 99 % of them.

MediaPipe returns boxes in whole pixels of the image it is given, truncated (a box 15.99
pixels wide is 15): on a 128x128 test image that alone costs a 16-pixel box up to 12% of its
IoU. The images are therefore given UPSCALE times larger, each pixel repeated (nearest
neighbour): MediaPipe's bilinear resize back to the model's input samples inside each block,
so the model sees exactly the test image, and the boxes come back with UPSCALE times finer
pixels.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from mediapipe_check import MEDIAPIPE, mediapipe_python, pipeline_outputs  # noqa: E402

CONFIG = ROOT / "configs" / "fashion_detection_ssd.toml"
WORKER = pathlib.Path(__file__).with_name("mediapipe_detector_worker.py")
SCORE = 0.3
UPSCALE = 4


def litert_detections(model: pathlib.Path, prepared: np.ndarray) -> list[dict]:
    from edgepipe.components.quantize import measure
    from edgepipe.components.shared import box_metrics

    outputs = measure.predict(model.read_bytes(), prepared)
    return [box_metrics.detections_of(outputs, index) for index in range(len(prepared))]


def compare(litert: list[dict], mediapipe: list, class_names: list[str],
            size: tuple[int, int]) -> dict:
    from edgepipe.components.shared import box_metrics

    height, width = size
    found = total = 0
    names_right = True
    for reference, got in zip(litert, mediapipe):
        kept = reference["scores"] >= SCORE
        boxes = np.array([[y / height, x / width, (y + h) / height, (x + w) / width]
                          for x, y, w, h, *_ in got]).reshape(-1, 4)
        # MediaPipe names each box's class from labels.txt (its index field stays unset)
        names_right &= all(name in class_names for *_, name, _score in got)
        classes = np.array([class_names.index(name) if name in class_names else -1
                            for *_, name, _score in got], np.int64)
        truth = {"bbox": reference["boxes"][kept], "label": reference["classes"][kept]}
        matched, _ = box_metrics.match(truth, {"boxes": boxes, "classes": classes,
                                               "scores": np.array([g[-1] for g in got])},
                                       threshold=0.9)
        found, total = found + int(matched.sum()), total + int(kept.sum())
    return {"litert_detections": total, "found_by_mediapipe": found,
            "agreement": found / total if total else float("nan"), "names_right": names_right}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", type=pathlib.Path, default=CONFIG)
    arguments = parser.parse_args(argv)
    from PIL import Image

    from edgepipe.components.shared import examples_io
    from edgepipe.contracts import artifacts, model_inputs

    python = mediapipe_python()
    outputs = pipeline_outputs(arguments.config)
    model = outputs["version"] / "model.tflite"
    model_json = artifacts.read_model_info(outputs["version"])
    test = examples_io.load_numpy(outputs["examples"], "test")
    prepared = model_inputs.prepare(model_json, test["image"])
    with tempfile.TemporaryDirectory(prefix="edgepipe-mediapipe-") as folder:
        paths = []
        for index, pixels in enumerate(test["image"]):
            paths.append(str(pathlib.Path(folder) / f"{index:05d}.png"))
            image = Image.fromarray(pixels if pixels.shape[-1] == 3 else pixels[..., 0])
            image.resize((image.width * UPSCALE, image.height * UPSCALE),
                         Image.NEAREST).save(paths[-1])
        done = subprocess.run([str(python), str(WORKER)], capture_output=True, text=True,
                              input=json.dumps({"model": str(model), "images": paths,
                                                "score_threshold": SCORE / 2}), check=False)
    if done.returncode != 0:
        raise SystemExit(f"MediaPipe failed on {model}:\n{done.stderr[-3000:]}")
    mediapipe = json.loads(done.stdout)["results"]
    row = compare(litert_detections(model, prepared), mediapipe, model_json["class_names"],
                  tuple(UPSCALE * size for size in test["image"].shape[1:3]))
    print(f"\nMediaPipe ObjectDetector ({MEDIAPIPE}) on {model} against edgepipe's LiteRT, "
          f"{len(test['id'])} test images, LiteRT detections scoring >= {SCORE}:")
    print(json.dumps(row, indent=2))
    met = row["agreement"] >= 0.99 and row["names_right"]
    print("target (>= 99 % found with the same class at IoU >= 0.9):",
          "met" if met else "NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
