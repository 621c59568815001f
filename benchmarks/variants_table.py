"""Print the TFLite variants table of a finished pipeline run.

    .venv/bin/python benchmarks/variants_table.py artifacts/quickstart/runs/latest.json
    .venv/bin/python benchmarks/variants_table.py configs/quickstart.toml

The argument is a run summary (JSON, written under <root>/runs/) or a pipeline config (TOML),
whose committed quantize artifact is looked up by its cache key. It prints the CPU the
latencies were measured on, every variant (size, gzip size, accuracy, drop in points below the
Keras model, agreement, batch-1 latency p50/p99 with one thread and with all cores, peak
memory, input/output types, fused LSTM ops, sparsity; skipped variants with their reason),
each variant's latency as a ratio against float32 measured in the same run, and the variant
the deploy policy chose. Nothing is re-measured: this reads the artifact.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # loading a config may import TensorFlow
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from edgepipe.components.quantize import deploy_policy  # noqa: E402


def quantize_artifact(argument: pathlib.Path) -> pathlib.Path:
    """The TFLiteModels folder of the run summary or config given on the command line."""
    if argument.suffix == ".json":
        summary = json.loads(argument.read_text())
        for stage in summary.get("stages", []):
            if stage["name"] == "quantize" and stage.get("artifacts", {}).get("tflite"):
                return pathlib.Path(stage["artifacts"]["tflite"])
        raise SystemExit(f"{argument}: the run has no committed quantize stage "
                         f"(status {summary.get('status')!r}); run the pipeline to the end.")
    from edgepipe.pipeline import config as config_module, dag, runner
    from edgepipe.pipeline.store import Store

    config = config_module.load(argument, dag.specs())
    for step in runner.plan(config):
        if step.node.stage == "quantize":
            if step.record is None:
                raise SystemExit(f"{argument}: quantize has no committed artifact for key "
                                 f"{step.key}; run `edgepipe run {argument}` first.")
            return Store(config.root).stage_dir("quantize", step.key) / "tflite"
    raise SystemExit(f"{argument}: the pipeline has no quantize stage.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=pathlib.Path, help="run summary .json or config .toml")
    folder = quantize_artifact(parser.parse_args(argv).run)
    records = json.loads((folder / "variants.json").read_text())
    properties = json.loads((folder / "manifest.json").read_text()).get("properties", {})
    keras_accuracy = properties.get("keras_accuracy")
    cpu = properties.get("cpu") or next((r["cpu"] for r in records if "cpu" in r), None)
    print(f"variants of {folder}")
    if cpu:
        print(f"CPU: {cpu['model']}, {cpu['cores']} core(s) usable, features: "
              f"{' '.join(cpu['features']) or 'none reported'}; int8 dot-product instructions: "
              f"{'yes' if cpu['int8_dot_product'] else 'NO (int8 kernels lack their fast path)'}")
    if keras_accuracy is not None:
        num_examples = next((r["num_examples"] for r in records if "num_examples" in r), "?")
        print(f"Keras accuracy {keras_accuracy:.4f} on {num_examples} test examples")
    print()
    print(deploy_policy.format_table(records, keras_accuracy))
    measured = {record["name"]: record for record in records if not record.get("skipped")}
    if "float32" in measured:
        base = measured["float32"]
        print("\nlatency and size against float32 (same run; < 1 is faster/smaller):")
        for name, record in measured.items():
            print(f"  {name:>13}  p50 1 thread x{record['latency_ms_p50'] / base['latency_ms_p50']:.2f}"
                  f"  p50 all cores x{record['latency_ms_p50_all_cores'] / base['latency_ms_p50_all_cores']:.2f}"
                  f"  size x{record['size_bytes'] / base['size_bytes']:.3f}"
                  f"  gzip x{record['gzip_size_bytes'] / base['size_bytes']:.3f}")
    deployable = folder / "deployable.json"
    if deployable.is_file():
        print(f"\ndeployable: {json.loads(deployable.read_text())['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
