"""Benchmark: ingest the full Fashion-MNIST (70,000 images) with Beam vs a plain loop.

    .venv/bin/python benchmarks/ingest_fashion_mnist.py [--workers 2] [--data DIR]

Both sides write the same records (the same ids, splits, PNG-encoded TFDS examples):
  - baseline: one Python process reads the IDX files and writes every serialized example
    with tf.io.TFRecordWriter, one file per split;
  - ingest: the real ingest stage through the artifact store, on Beam's DirectRunner in
    multi_processing mode with --workers processes (plus metadata and the record accounting).
Both are measured in this run, after TensorFlow is imported, and the ratio of wall times
(ingest / baseline) is printed. Data: /usr/share/datasets/fashion-mnist (Debian package
dataset-fashion-mnist) by default.
"""

from __future__ import annotations

import argparse
import os
import resource
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def files_in(folder: pathlib.Path) -> dict[str, str]:
    return {f"{split}_{part}": str(folder / f"{prefix}-{part}-idx{3 if part == 'images' else 1}"
                                   "-ubyte.gz")
            for split, prefix in (("train", "train"), ("test", "t10k"))
            for part in ("images", "labels")}


def baseline(files: dict[str, str], out: pathlib.Path, validation_fraction: float) -> dict:
    """The plain loop: the same examples, serialized and written one by one."""
    import tensorflow as tf

    from edgepipe.components.ingest import records
    from edgepipe.components.ingest.sources import idx
    from edgepipe.components.shared import png

    info = {"feature": "image", "shape": [28, 28, 1], "class_names": CLASS_NAMES}
    features = records.tfds_features(info)
    writers = {split: tf.io.TFRecordWriter(str(out / f"baseline-{split}.tfrecord"))
               for split in records.SPLITS}
    counts = dict.fromkeys(records.SPLITS, 0)
    for origin in ("train", "test"):
        images = idx.read_idx(files[f"{origin}_images"], "images", 3)
        labels = idx.read_idx(files[f"{origin}_labels"], "labels", 1)
        name = pathlib.Path(files[f"{origin}_images"]).name
        for index, (image, label) in enumerate(zip(images, labels)):
            record_id = f"{name}:{index}"
            split = records.assign_split(record_id, origin, validation_fraction)
            writers[split].write(features.serialize_example(
                {"id": record_id, "image": png.encode(image[..., None]),  # as ingest does
                 "label": int(label)}))
            counts[split] += 1
    for writer in writers.values():
        writer.close()
    return counts


def run_ingest(files: dict[str, str], root: pathlib.Path, workers: int,
               validation_fraction: float) -> dict:
    from edgepipe.components.ingest import stage as ingest
    from edgepipe.pipeline.stage import Context, Runtime
    from edgepipe.pipeline.store import Store

    config = ingest.Config.model_validate({
        "source": "idx", **files, "class_names": CLASS_NAMES,
        "validation_fraction": validation_fraction})
    options = (("direct_running_mode", "multi_processing"), ("direct_num_workers", str(workers)))
    store = Store(root)
    context = Context(pipeline_name="benchmark", run_id="benchmark", seed=0,
                      runtime=Runtime(beam_options=options),
                      scratch_dir=store.scratch_dir("ingest", "benchmark"))
    result, _ = store.execute(ingest.SPEC, "benchmark", {}, config, context)
    return result.properties


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the Beam worker processes)."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternate baseline and ingest this many times; the best time "
                        "of each side is compared (the machine may be shared)")
    args = parser.parse_args()
    files = files_in(pathlib.Path(args.data))
    missing = [path for path in files.values() if not os.path.isfile(path)]
    if missing:
        sys.exit(f"{missing[0]} not found: apt-get install dataset-fashion-mnist, or --data DIR.")

    import tensorflow  # noqa: F401  imported before either clock starts
    import tensorflow_datasets  # noqa: F401

    baseline_times, ingest_times, baseline_cpu, ingest_cpu = [], [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as scratch:
            scratch = pathlib.Path(scratch)
            started, cpu = time.perf_counter(), cpu_seconds()
            expected = baseline(files, scratch, args.validation_fraction)
            baseline_times.append(time.perf_counter() - started)
            baseline_cpu.append(cpu_seconds() - cpu)

            started, cpu = time.perf_counter(), cpu_seconds()
            properties = run_ingest(files, scratch / "store", args.workers,
                                    args.validation_fraction)
            ingest_times.append(time.perf_counter() - started)
            ingest_cpu.append(cpu_seconds() - cpu)
        if properties["splits"] != expected:
            sys.exit(f"the two sides wrote different records: {properties['splits']} vs "
                     f"{expected}")
        print(f"run {repeat + 1}: baseline {baseline_times[-1]:.1f} s ({baseline_cpu[-1]:.1f} "
              f"CPU s), ingest {ingest_times[-1]:.1f} s ({ingest_cpu[-1]:.1f} CPU s in all "
              f"processes), ratio {ingest_times[-1] / baseline_times[-1]:.2f}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    total = sum(expected.values())
    baseline_seconds, ingest_seconds = min(baseline_times), min(ingest_times)
    print(f"records: {total} {expected}")
    print(f"baseline (1 process, tf.io.TFRecordWriter): {baseline_seconds:.1f} s "
          f"({total / baseline_seconds:.0f} records/s)")
    print(f"ingest (DirectRunner multi_processing, {args.workers} workers): "
          f"{ingest_seconds:.1f} s ({total / ingest_seconds:.0f} records/s)")
    print(f"ratio ingest / baseline: {ingest_seconds / baseline_seconds:.2f}")


if __name__ == "__main__":
    main()
