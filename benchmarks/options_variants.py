"""What the shared builder options do to the TFLite variants, measured on the tabular config.

    nice -n 10 .venv/bin/python benchmarks/options_variants.py [--root DIR] [--epochs N]
                                                               [--option key=value ...]

Runs configs/breast_cancer_mlp.toml once per option (normalization, activation, residual;
ingest and statistics are shared through the cache) and prints, per option, the Keras test
accuracy, each variant's accuracy, agreement with Keras and ops (the config's int8 variants
take float input, so QUANTIZE/DEQUANTIZE are at their edges), and the reason a variant was
skipped (QAT cannot annotate layer normalisation, ELU or SELU). The options are `[train.model_options]` values.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OPTIONS = ("normalization=none", "normalization=batch", "normalization=layer",
           "activation=gelu", "activation=swish", "activation=elu", "activation=selu",
           "residual=true")


def run(option: str, root: str | None, epochs: int) -> dict:
    import edgepipe

    key, value = option.split("=", 1)
    parsed = {"true": True, "false": False}.get(value, value)
    overrides = {f"train.model_options.{key}": parsed, "train.epochs": epochs,
                 "quantize.variants": ["float32", "int8", "qat_int8"]}
    from edgepipe.contracts import artifacts

    result = edgepipe.run(REPO / "configs" / "breast_cancer_mlp.toml", overrides=overrides,
                          root=root, progress=False)
    records = artifacts.read_variants(result.artifacts["quantize"]["tflite"])
    return {"keras": result.metrics["evaluate"]["accuracy"],
            "variants": [record for record in records if "skipped" not in record],
            "skipped": [record for record in records if "skipped" in record]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="artifact root (default: the config's)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--option", action="append", help=f"default: {', '.join(OPTIONS)}")
    args = parser.parse_args(argv)
    for option in args.option or OPTIONS:
        metrics = run(option, args.root, args.epochs)
        print(f"\n{option}: Keras test accuracy {metrics['keras']:.4f}")
        for variant in metrics["variants"]:
            print(f"  {variant['name']:<9} accuracy {variant['accuracy']:.4f}  agreement "
                  f"{variant['agreement']:.4f}  ops {','.join(sorted(set(variant['ops'])))}")
        for variant in metrics["skipped"]:
            print(f"  {variant['name']:<9} skipped: {variant['skipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
