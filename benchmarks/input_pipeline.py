"""Is the train stage's tf.data input pipeline the bottleneck? Measured, in one run.

Trains the default CNN for the same fixed number of steps twice per round, from the same
initial weights: (a) through the train stage's own input pipeline
(components/shared/input_pipeline.py via components/train/distribute.py sharded_dataset: parallel decode, cache, shuffle, batch, prefetch),
reading the Examples artifact from disk, decoding included; (b) through `model.fit` on the
same examples already decoded in memory as numpy arrays. Rounds alternate the two orders so
that load from other processes affects both alike. Prints both throughputs and their ratio
(pipeline / in-memory); exits 1 when the ratio is below --min-ratio (the goal: 0.90).

    .venv/bin/python benchmarks/input_pipeline.py                 # ingests the quickstart sample
    .venv/bin/python benchmarks/input_pipeline.py --examples <Examples artifact folder>
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgepipe.pipeline.stage import Artifact, Context, Runtime  # noqa: E402
from edgepipe.pipeline.store import Store  # noqa: E402

SAMPLE = REPO / "data" / "fashion_mnist"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def ingest_sample(root: pathlib.Path) -> tuple[Artifact, Artifact]:
    """Examples and Statistics of the committed quickstart sample, made by the real stages."""
    from edgepipe.components.ingest import stage as ingest
    from edgepipe.components.statistics import stage as statistics

    store = Store(root)
    config = ingest.Config.model_validate({
        "source": "idx", "class_names": CLASS_NAMES, "validation_fraction": 0.1,
        **{f"{split}_{part}": str(SAMPLE / f"{prefix}-{part}-idx{3 if part == 'images' else 1}"
                                           "-ubyte.gz")
           for split, prefix in (("train", "train"), ("test", "t10k"))
           for part in ("images", "labels")},
    })
    _, examples = store.execute(ingest.SPEC, "bench", {}, config, _context(store, "ingest"))
    _, stats = store.execute(statistics.SPEC, "bench", {"examples": examples["examples"]},
                             statistics.Config(), _context(store, "statistics"))
    return examples["examples"], stats["statistics"]


def _context(store: Store, stage: str) -> Context:
    return Context("benchmark", "benchmark", 0, Runtime(), store.scratch_dir(stage, "bench"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", help="an Examples artifact (default: ingest the sample)")
    parser.add_argument("--statistics", help="its Statistics artifact (with --examples)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8,
                        help="passes over train per path (the quickstart trains 8)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating repetitions")
    parser.add_argument("--min-ratio", type=float, default=0.90)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import tensorflow as tf

    from edgepipe import models
    from edgepipe.components.shared import examples_io, input_pipeline, input_spec
    from edgepipe.components.train import distribute
    from edgepipe.contracts import model_inputs
    from edgepipe.models.keras import keras

    with tempfile.TemporaryDirectory() as folder:
        if args.examples:
            examples_path = pathlib.Path(args.examples)
            statistics_path = pathlib.Path(args.statistics or "")
        else:
            examples, stats = ingest_sample(pathlib.Path(folder))
            examples_path, statistics_path = examples.path, stats.path
        spec = input_spec.input_spec(examples_path, statistics_path)
        size = examples_io.split_size(examples_path, "train")
        steps = size // args.batch_size
        strategy = tf.distribute.get_strategy()

        def build():
            keras.utils.set_random_seed(0)
            model = models.build("cnn", input_shape=spec["input_shape"], num_classes=10,
                                 **spec["normalization"])
            model.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

        def through_pipeline() -> float:
            data = distribute.sharded_dataset(
                tf, strategy,
                lambda context, batch: input_pipeline.dataset(
                    tf, examples_path, "train", spec, batch, seed=0, shuffle_buffer=10000,
                    repeat=True, input_context=context),
                args.batch_size)
            model = build()
            started = time.perf_counter()
            model.fit(data, epochs=args.epochs, steps_per_epoch=steps, verbose=0)
            return time.perf_counter() - started

        arrays = examples_io.load_numpy(examples_path, "train")
        images = model_inputs.prepare(spec, arrays["image"])
        labels = arrays["label"]

        def in_memory() -> float:
            model = build()
            started = time.perf_counter()
            model.fit(images, labels, batch_size=args.batch_size, epochs=args.epochs,
                      steps_per_epoch=steps, shuffle=True, verbose=0)
            return time.perf_counter() - started

        seconds = {"pipeline": 0.0, "numpy": 0.0}
        for round_index in range(args.rounds):
            order = [("pipeline", through_pipeline), ("numpy", in_memory)]
            for name, measure in order if round_index % 2 == 0 else order[::-1]:
                seconds[name] += measure()
    images_trained = args.rounds * args.epochs * steps * args.batch_size
    rates = {name: images_trained / value for name, value in seconds.items()}
    ratio = rates["pipeline"] / rates["numpy"]
    print(f"{size} training examples, batch {args.batch_size}, {args.epochs * steps} steps "
          f"per run, {args.rounds} round(s) per path")
    print(f"train stage tf.data pipeline: {rates['pipeline']:8.0f} images/s")
    print(f"in-memory numpy model.fit:    {rates['numpy']:8.0f} images/s")
    print(f"ratio (pipeline / in-memory): {ratio:.3f}  (goal >= {args.min_ratio:.2f})")
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
