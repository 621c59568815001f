"""The centroid detector (`[train] model = "fomo"`, in the manner of Edge Impulse's FOMO) on the
generated detection set, through the pipeline: centroid precision, recall and F1 of the Keras
model (evaluate, test split, overall and per class) and of every TFLite variant on LiteRT
(quantize), with sizes, batch-1 latencies and the deploy policy's choice.

    .venv/bin/python benchmarks/fomo_centroids.py [configs/fashion_detection_fomo.toml]
        [--set train.epochs=30 ...]

Runs `edgepipe.run` (stages already run with the same inputs and config are reused from the
cache): the training, scoring and matching rule are the pipeline's own (components/shared/
centroids.py, edgepipe/contracts/centroids.py), not a copy of them.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?",
                        default=str(REPO / "configs" / "fashion_detection_fomo.toml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, e.g. train.epochs=30")
    args = parser.parse_args(argv)
    import edgepipe

    result = edgepipe.run(args.config, overrides=args.set, progress=False)
    train, evaluate = result.metrics["train"], result.metrics["evaluate"]
    quantize = result.metrics["quantize"]
    print(f"\nfomo: {train['params']:,} parameters, {train['epochs']} epochs "
          f"({train['seconds_per_epoch'] or 0:.1f} s per epoch), {train['strategy']}")
    print(f"{'':16} {'precision':>9} {'recall':>9} {'F1':>7} {'size':>10} {'p50 1 thr':>10} "
          f"{'p50 all':>9}")
    print(f"{'Keras':16} {evaluate['centroid_precision']:9.4f} "
          f"{evaluate['centroid_recall']:9.4f} {evaluate['centroid_f1']:7.4f}")
    for row in quantize["variants"]:
        print(f"{'TFLite ' + row['name']:16} {row['centroid_precision']:9.4f} "
              f"{row['centroid_recall']:9.4f} {row['centroid_f1']:7.4f} "
              f"{row['size_bytes']:10,} {row['latency_ms_p50']:8.3f}ms "
              f"{row['latency_ms_p50_all_cores']:7.3f}ms")
    for name, scores in evaluate["centroid_per_class"].items():
        print(f"  {name:14} precision {scores['precision']:.3f}  recall {scores['recall']:.3f}"
              f"  F1 {scores['f1']:.3f}")
    print(f"deployable: {quantize['deployable']['variant']} ({quantize['deployable']['reason']})")
    print(f"evaluate: {'BLESSED' if evaluate['blessed'] else 'NOT_BLESSED'}: "
          f"{evaluate['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
