"""The forecasting config against the classical forecasts, on the same windows, in one run.

    nice -n 10 .venv/bin/python benchmarks/forecast_baselines.py
                                        [configs/fertility_forecasting.toml] [--root DIR]
                                        [--seed N ...] [--backtest-windows N]

For each pipeline seed it runs the pipeline (cached stages are reused): the evaluate stage
fits naive, seasonal naive, Theta and ETS (statsmodels) per series on the same history as
the model's test windows and scores all of them by the same M4 definitions. This prints,
side by side, sMAPE, MASE and MAE of the baselines, of the Keras model and of every TFLite
variant on LiteRT. The targets (issue 22): the model's MASE below seasonal naive's, and its
sMAPE at most Theta's (or within 5% of it). With `--backtest-windows N` the evaluation is
rolling-origin (`[evaluate] backtest_windows`: N test windows per series, the model trained on
what precedes the earliest) and a table per origin follows the overall one.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(config: str, root: str | None, seed: int, backtest_windows: int = 1) -> dict:
    import edgepipe

    overrides = {"pipeline.seed": seed,  # the config's own evaluation unless asked otherwise
                 **({"evaluate.backtest_windows": backtest_windows}
                    if backtest_windows != 1 else {})}
    result = edgepipe.run(config, overrides=overrides, root=root, progress=False)
    evaluate, quantize = result.metrics["evaluate"], result.metrics["quantize"]
    return {"seed": seed, "keras": {key: evaluate[key] for key in ("smape", "mase", "mae")},
            "baselines": evaluate["baselines"], "series": evaluate["num_series"],
            "backtest": evaluate.get("backtest", []),
            "variants": {row["name"]: row for row in quantize["variants"]},
            "deployable": quantize["deployable"]["variant"], "blessed": evaluate["blessed"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?",
                        default=str(REPO / "configs/fertility_forecasting.toml"))
    parser.add_argument("--root", help="artifact root (default: the config's)")
    parser.add_argument("--seed", type=int, action="append", help="pipeline seed(s); default 42")
    parser.add_argument("--backtest-windows", type=int, default=1,
                        help="rolling origins per series (default 1: the last horizon only)")
    args = parser.parse_args(argv)
    met = []
    for seed in args.seed or [42]:
        row = measure(args.config, args.root and f"{args.root}/seed{seed}", seed,
                      args.backtest_windows)
        print(f"\nseed {seed}: {row['series']} series, test windows = each series' last "
              f"{args.backtest_windows} x horizon points")
        print(f"  {'forecaster':<34} {'sMAPE':>8} {'MASE':>8} {'MAE':>9}")
        for name, scores in row["baselines"].items():
            print(f"  {'baseline ' + name:<34} {scores['smape']:8.3f} "
                  f"{scores['mase']:8.4f} {scores['mae']:9.4f}")
        keras = row["keras"]
        print(f"  {'edgepipe Keras model':<34} {keras['smape']:8.3f} {keras['mase']:8.4f} "
              f"{keras['mae']:9.4f}")
        for name, scores in row["variants"].items():
            print(f"  {'edgepipe TFLite ' + name:<34} {scores['smape']:8.3f} "
                  f"{scores['mase']:8.4f}")
        seasonal, theta = row["baselines"]["seasonal_naive"], row["baselines"]["theta"]
        beats = keras["mase"] < seasonal["mase"]
        close = keras["smape"] <= 1.05 * theta["smape"]
        print(f"  {'OK' if beats else 'NOT MET'}: MASE {keras['mase']:.4f} vs seasonal naive "
              f"{seasonal['mase']:.4f}")
        print(f"  {'OK' if close else 'NOT MET'}: sMAPE {keras['smape']:.3f} vs Theta "
              f"{theta['smape']:.3f} ({keras['smape'] / theta['smape'] - 1:+.1%}; target at "
              "most +5%)")
        print(f"  deployed variant: {row['deployable']}; blessed: {row['blessed']}")
        print_origins(row["backtest"])
        met.append(beats and close)
    print(f"\ntargets met on {sum(met)} of {len(met)} seed(s)")
    return 0 if all(met) else 1


def print_origins(origins: list[dict]) -> None:
    """sMAPE / MASE of the model and each baseline at every origin (1: the earliest)."""
    if len(origins) < 2:
        return
    names = list(origins[0]["baselines"])
    print(f"  {'sMAPE / MASE per origin':<26}" + "".join(f"{name:>18}"
                                                       for name in ["model", *names]))
    for origin in origins:
        cells = [origin["model"], *(origin["baselines"][name] for name in names)]
        print(f"  {'origin %d (last %d steps)' % (origin['origin'], origin['steps_before_end']):<26}"
              + "".join(f"{cell['smape']:>9.3f} / {cell['mase']:<6.3f}" for cell in cells))


if __name__ == "__main__":
    sys.exit(main())
