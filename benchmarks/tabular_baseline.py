"""The tabular config against scikit-learn baselines on the same splits, measured in one run.

    .venv/bin/pip install -e '.[bench]'        # scikit-learn
    nice -n 10 .venv/bin/python benchmarks/tabular_baseline.py [configs/breast_cancer_mlp.toml]
                                               [--root DIR] [--seed N ...]

For each pipeline seed it runs the pipeline (cached stages are reused), reads the train and
test splits the ingest stage cut from the Examples artifact, fits a standardised logistic
regression (and a random forest) on the train split and prints, side by side, their test
accuracy, the Keras model's (evaluate) and every TFLite variant's (quantize), with the
differences in points. The pipeline's model must reach the logistic regression, and its int8
variant must be within 1 point of Keras.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def features(examples, split: str, label: str = "label"):
    """(rows [N, features], labels or targets) of a split of a sequence Examples artifact (a
    table row is one step of N channels); `label` is "target" for regression."""
    import numpy as np

    from edgepipe.components.shared import examples_io

    data = examples_io.load_numpy(examples, split)
    rows = np.stack([np.asarray(series, np.float64).reshape(-1) for series in data["sequence"]])
    return rows, np.asarray(data[label], np.float64 if label == "target" else None)


def baselines(examples, seed: int) -> dict[str, float]:
    """Test accuracy of scikit-learn models fitted on the train split."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y = features(examples, "train")
    test_x, test_y = features(examples, "test")
    models = {
        "logistic regression": make_pipeline(StandardScaler(),
                                             LogisticRegression(max_iter=5000)),
        "random forest": RandomForestClassifier(n_estimators=300, random_state=seed),
    }
    return {name: float(model.fit(train_x, train_y).score(test_x, test_y))
            for name, model in models.items()}


def measure(config: str, root: str | None, seed: int, metric: str = "accuracy",
            fit_baselines=None) -> dict:
    """One pipeline run (cached stages reused) and the baselines on its splits: the Keras
    model's `metric` (evaluate), every TFLite variant's (quantize), the baselines'."""
    import edgepipe

    result = edgepipe.run(config, overrides={"pipeline.seed": seed}, root=root,
                          progress=False)
    metrics = result.metrics
    examples = result.artifacts["ingest"]["examples"]
    variants = {variant["name"]: variant[metric] for variant in metrics["quantize"]["variants"]}
    return {"seed": seed, "keras": metrics["evaluate"][metric], "evaluate": metrics["evaluate"],
            "variants": variants, "test_examples": metrics["evaluate"].get("num_examples"),
            "baselines": (fit_baselines or baselines)(examples, seed)}


def arguments(description: str, default_config: str, argv: list[str] | None):
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(REPO / default_config))
    parser.add_argument("--root", help="artifact root (default: the config's)")
    parser.add_argument("--seed", type=int, action="append", help="pipeline seed(s); default 42")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "configs/breast_cancer_mlp.toml", argv)
    failures = 0
    for seed in args.seed or [42]:
        row = measure(args.config, args.root and f"{args.root}/seed{seed}", seed)
        logistic = row["baselines"]["logistic regression"]
        print(f"\nseed {seed}: {row['test_examples']} test examples")
        for name, accuracy in row["baselines"].items():
            print(f"  scikit-learn {name:<20} {accuracy:.4f}")
        print(f"  edgepipe Keras model              {row['keras']:.4f}  "
              f"({100 * (row['keras'] - logistic):+.1f} points vs logistic regression)")
        for name, accuracy in row["variants"].items():
            print(f"  edgepipe TFLite {name:<17} {accuracy:.4f}  "
                  f"({100 * (accuracy - row['keras']):+.1f} points vs Keras)")
        int8 = row["variants"].get("int8")
        ok = row["keras"] >= logistic and (int8 is None or row["keras"] - int8 <= 0.01 + 1e-9)
        failures += not ok
        print(f"  {'OK' if ok else 'NOT MET'}: Keras >= logistic regression, int8 within 1 "
              "point of Keras")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
