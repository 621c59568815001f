"""The centroid detector (models/fomo.py, in the manner of Edge Impulse's FOMO) trained from
scratch on a detection Examples artifact, scored by centroid precision, recall and F1 on its
test split, in Keras and on LiteRT (float32 and int8), with batch-1 latency.

    .venv/bin/python benchmarks/fomo_centroids.py [--examples PATH] [--epochs 30]

Default examples: the newest ingest artifact of configs/fashion_detection_ssd.toml (run it
first). Training uses the same box-aware augmentation as the box detector
(components/shared/detection.augment), then labels each cell of the 1/8 grid holding a box
centre (components/shared/centroids.py). This script is outside the pipeline: `[train] model =
"fomo"` is not yet wired into the stages (see docs/measured.md).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def newest_examples() -> pathlib.Path:
    found = sorted((ROOT / "artifacts" / "fashion_detection_ssd" / "artifacts" / "ingest")
                   .glob("*/examples"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise SystemExit("no examples: run `.venv/bin/edgepipe run "
                         "configs/fashion_detection_ssd.toml` first, or pass --examples.")
    return found[-1]


def training_data(tf, data: dict, rows: int, columns: int, batch: int, seed: int):
    from edgepipe.components.shared import centroids, detection
    from edgepipe.components.shared.detection_input import ragged_boxes

    boxes, labels, lengths = ragged_boxes(data["objects"])
    elements = tf.data.Dataset.from_tensor_slices((
        data["image"], tf.RaggedTensor.from_row_lengths(boxes, lengths),
        tf.RaggedTensor.from_row_lengths(labels, lengths))).cache()

    def example(image, image_boxes, image_labels):
        image, image_boxes, image_labels = detection.augment(
            tf, tf.cast(image, tf.float32), image_boxes, image_labels)
        return image, centroids.cell_labels(tf, image_boxes, image_labels, rows, columns)

    return (elements.shuffle(len(data["image"]), seed=seed).repeat()
            .map(example, num_parallel_calls=tf.data.AUTOTUNE).batch(batch)
            .prefetch(tf.data.AUTOTUNE))


def litert_heatmaps(content: bytes, images: np.ndarray) -> tuple[np.ndarray, float]:
    from edgepipe.components.quantize import measure

    run = measure.run(content, images.astype(np.float32), num_threads=2, warmup=5)
    return run.outputs, float(np.median(run.invoke_seconds) * 1e3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=pathlib.Path, default=None)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    arguments = parser.parse_args(argv)
    import tensorflow as tf

    from edgepipe.components.shared import centroids, examples_io
    from edgepipe.models import fomo
    from edgepipe.models.keras import keras

    examples = arguments.examples or newest_examples()
    train = examples_io.load_numpy(examples, "train")
    test = examples_io.load_numpy(examples, "test")
    names = examples_io.class_names(examples)
    keras.utils.set_random_seed(arguments.seed)
    pixels = train["image"].astype(np.float64)
    model = fomo.build(train["image"].shape[1:], len(names), float(pixels.mean()),
                       float(pixels.var()))
    rows, columns = model.output_shape[1:3]
    loss, _ = centroids.loss(keras, None, {})
    steps = max(1, len(train["image"]) // arguments.batch_size)
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        0.003, arguments.epochs * steps)), loss=loss)
    started = time.monotonic()
    model.fit(training_data(tf, train, rows, columns, arguments.batch_size, arguments.seed),
              epochs=arguments.epochs, steps_per_epoch=steps, verbose=2)
    seconds = time.monotonic() - started
    truths = list(test["objects"])
    print(f"\nexamples {examples}\nfomo: {model.count_params():,} parameters, grid "
          f"{rows}x{columns}, {arguments.epochs} epochs in {seconds:.0f} s")
    keras_scores = centroids.scores(truths, model.predict(test["image"].astype(np.float32),
                                                          verbose=0))
    print("keras   ", {key: round(value, 4) for key, value in keras_scores.items()})
    representative = train["image"][:200].astype(np.float32)
    for variant in ("float32", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if variant == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([row[None]] for row in representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        content = converter.convert()
        heatmaps, latency = litert_heatmaps(content, test["image"])
        found = centroids.scores(truths, heatmaps)
        print(f"{variant:8}", {key: round(value, 4) for key, value in found.items()},
              f"{len(content) / 1024:.0f} KB, p50 {latency:.3f} ms (2 threads)")


if __name__ == "__main__":
    main()
