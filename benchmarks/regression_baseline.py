"""The regression config against scikit-learn baselines on the same splits, measured in one run.

    .venv/bin/pip install -e '.[bench]'        # scikit-learn
    nice -n 10 .venv/bin/python benchmarks/regression_baseline.py
                                               [configs/bike_sharing_regression.toml]
                                               [--root DIR] [--seed N ...]

For each pipeline seed it runs the pipeline (cached stages are reused), reads the train and
test splits the ingest stage cut from the Examples artifact (fixed by a hash of each id, so
every seed sees the same rows; the seed changes the model's initialisation and batches),
fits a standardised LinearRegression and a HistGradientBoostingRegressor on the train split
and prints, side by side, their test MAE, the Keras model's (evaluate) and every TFLite
variant's (quantize), in the target's units. The pipeline's model must beat LinearRegression's
MAE on every seed; HistGradientBoosting is printed beside it, not required.
"""

from __future__ import annotations

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from tabular_baseline import arguments, features, measure  # noqa: E402  the same run and splits


def baselines(examples, seed: int) -> dict[str, float]:
    """Test MAE (over every target) of scikit-learn models fitted on the train split."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_absolute_error
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y = features(examples, "train", "target")
    test_x, test_y = features(examples, "test", "target")
    boosting = HistGradientBoostingRegressor(random_state=seed)
    models = {
        "LinearRegression": make_pipeline(StandardScaler(), LinearRegression()),
        # One booster per target when there are several (it predicts a single value).
        "HistGradientBoosting": boosting if train_y.shape[1] == 1
        else MultiOutputRegressor(boosting),
    }
    maes = {}
    for name, model in models.items():
        fitted = model.fit(train_x, train_y[:, 0] if train_y.shape[1] == 1 else train_y)
        predictions = fitted.predict(test_x).reshape(test_y.shape)
        maes[name] = float(mean_absolute_error(test_y, predictions))
    return maes


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "configs/bike_sharing_regression.toml", argv)
    beaten = []
    for seed in args.seed or [42]:
        row = measure(args.config, args.root and f"{args.root}/seed{seed}", seed, "mae",
                      baselines)
        linear = row["baselines"]["LinearRegression"]
        print(f"\nseed {seed}: {row['test_examples']} test examples, test MAE")
        for name, mae in row["baselines"].items():
            print(f"  scikit-learn {name:<21} {mae:10.4f}")
        print(f"  edgepipe Keras model              {row['keras']:10.4f}  "
              f"({row['keras'] / linear - 1:+.1%} vs LinearRegression; "
              f"R² {row['evaluate']['r2']:.3f})")
        for name, mae in row["variants"].items():
            print(f"  edgepipe TFLite {name:<17} {mae:10.4f}  "
                  f"({mae / row['keras'] - 1:+.1%} vs Keras)")
        beaten.append(row["keras"] < linear)
        print(f"  {'OK' if beaten[-1] else 'NOT MET'}: Keras's MAE below LinearRegression's")
    every = all(beaten)
    print(f"\nKeras beat LinearRegression's MAE on {'every' if every else 'NOT every'} seed "
          f"({sum(beaten)} of {len(beaten)})")
    return 0 if every else 1


if __name__ == "__main__":
    sys.exit(main())
