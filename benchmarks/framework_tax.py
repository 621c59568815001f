"""The framework tax, measured: a hand-written Keras script against the pipeline, one machine.

Rows, each a fresh process timed from the outside (interpreter start and imports included):
  a  benchmarks/keras_baseline.py: numpy arrays, the 421,642-parameter `cnn`, Adam 1e-3,
     batch 64, 10 epochs, model.fit, then full-int8 conversion and its accuracy on LiteRT;
  b  `edgepipe run benchmarks/framework_tax.toml --no-cache`: the same model, epochs, batch
     and optimiser through every stage, float32 and int8 variants only;
  c  `edgepipe run configs/fashion_mnist_cnn.toml --no-cache`: the shipped recipe, all seven
     variants.
Each row prints Keras and int8 test accuracy, wall seconds and training images/s; the pipeline
rows also each stage's seconds (from the run summary) and each variant's split into
fine-tuning, conversion and measurement. Then b's wall time and accuracy against a's (the
target: at most 1.3x, within 0.3 points), the CPU model and its flags, and the load average.

With rows a and b, a runs twice, before and after b, and b is compared with the mean of the
two: this machine's speed drifts by 10-20 % over minutes (other tenants), and a baseline
that brackets the run cancels a steady drift instead of crediting or charging it to b.
Needs the full dataset: `apt-get install dataset-fashion-mnist`.

    .venv/bin/python benchmarks/framework_tax.py                  # rows a, b, c (~30 min)
    .venv/bin/python benchmarks/framework_tax.py --rows a,b --seed 1
    .venv/bin/python benchmarks/framework_tax.py --rows a,b --no-bracket   # a once
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable
ROWS = {
    "a": ("hand-written Keras (benchmarks/keras_baseline.py)", None),
    "b": ("edgepipe, same model (benchmarks/framework_tax.toml)", "benchmarks/framework_tax.toml"),
    "c": ("edgepipe, shipped recipe (configs/fashion_mnist_cnn.toml)",
          "configs/fashion_mnist_cnn.toml"),
}
MAX_RATIO, MAX_POINTS = 1.3, 0.3


def cpu() -> tuple[str, list[str]]:
    """The CPU model and the flags that decide training and TFLite kernel speed."""
    text = pathlib.Path("/proc/cpuinfo").read_text(errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = set((re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE) or ["", ""])[1].split())
    wanted = [flag for flag in sorted(flags) if flag.startswith(("avx", "amx")) or flag in
              ("fma", "f16c", "sse4_2")]
    return (model.group(1).strip() if model else "unknown"), wanted


def run_row(row: str, seed: int, out: pathlib.Path, name: str = "") -> dict:
    """Run one row in a fresh process; its log goes to out/<name or row>.log."""
    _, config = ROWS[row]
    if config is None:
        command = [PYTHON, str(REPO / "benchmarks" / "keras_baseline.py"), "--seed", str(seed)]
    else:
        command = [str(pathlib.Path(PYTHON).parent / "edgepipe"), "run", str(REPO / config),
                   "--no-cache", "--root", str(out / row), "--set", f"pipeline.seed={seed}"]
    log = out / f"{name or row}.log"
    load = os.getloadavg()[0]
    started = time.monotonic()
    with open(log, "w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).returncode
    wall = time.monotonic() - started
    result = {"row": row, "name": name or row, "wall_seconds": round(wall, 1), "exit": code, "log": str(log),
              "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}
    if code != 0:
        return result
    if config is None:
        line = [line for line in log.read_text().splitlines() if line.startswith("RESULT ")][-1]
        return {**result, **json.loads(line[len("RESULT "):])}
    return {**result, **pipeline_figures(out / row / "runs" / "latest.json")}


def pipeline_figures(summary_path: pathlib.Path) -> dict:
    """Accuracies, throughput, stage seconds and variant splits from a run summary."""
    summary = json.loads(summary_path.read_text())
    stages = {stage["name"]: stage for stage in summary["stages"]}
    quantize = stages.get("quantize", {}).get("metrics", {})
    variants = {variant["name"]: variant for variant in quantize.get("variants", [])}
    return {
        "keras_accuracy": stages["evaluate"]["metrics"]["accuracy"],
        "int8_accuracy": variants.get("int8", {}).get("accuracy"),
        "images_per_second": stages["train"]["metrics"].get("images_per_second"),
        "pipeline_seconds": summary["seconds"],
        "stages": {name: stage["seconds"] for name, stage in stages.items()},
        "variants": {name: {**variant.get("seconds", {}), "accuracy": variant["accuracy"]}
                     for name, variant in variants.items()},
    }


def show(result: dict) -> None:
    title = ROWS[result["row"]][0]
    if result["exit"] != 0:
        print(f"({result['name']}) {title}: FAILED with exit {result['exit']}, see "
              f"{result['log']}")
        return
    int8 = result.get("int8_accuracy")
    print(f"({result['name']}) {title}\n    Keras {result['keras_accuracy']:.4f}  int8 "
          f"{int8 if int8 is None else format(int8, '.4f')}  wall {result['wall_seconds']:.1f} s"
          f"  training {result['images_per_second']:,.0f} images/s  (load average "
          f"{result['load_before']:.1f} -> {result['load_after']:.1f})")
    if "stages" in result:
        print("    stages: " + ", ".join(f"{name} {seconds:.1f} s"
                                         for name, seconds in result["stages"].items()))
        for name, split in result["variants"].items():
            print(f"    {name:<14} accuracy {split['accuracy']:.4f}  fine-tune "
                  f"{split.get('fine_tune', 0):6.1f} s  convert {split.get('convert', 0):5.1f} s"
                  f"  measure {split.get('measure', 0):6.1f} s")


def compare(results: dict[str, dict]) -> None:
    baselines = [results[name] for name in ("a", "a_after") if name in results]
    b = results.get("b")
    if not (baselines and b) or b["exit"] or any(a["exit"] for a in baselines):
        return
    wall = sum(a["wall_seconds"] for a in baselines) / len(baselines)
    rate = sum(a["images_per_second"] for a in baselines) / len(baselines)
    ratio = b["wall_seconds"] / wall
    points = 100 * (b["keras_accuracy"] - baselines[0]["keras_accuracy"])
    verdict = "met" if ratio <= MAX_RATIO and abs(points) <= MAX_POINTS else "NOT met"
    against = (f"(a) {wall:.1f} s, the mean of "
               + " and ".join(f"{a['wall_seconds']:.1f} s" for a in baselines)
               if len(baselines) > 1 else f"(a) {wall:.1f} s")
    print(f"\nframework tax: (b) {b['wall_seconds']:.1f} s against {against}: "
          f"{ratio:.2f}x; Keras accuracy {points:+.2f} points (target <= {MAX_RATIO}x, within "
          f"{MAX_POINTS} points): {verdict}; training throughput "
          f"{b['images_per_second'] / rate:.3f} of (a)'s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="a,b,c", help="rows to run, e.g. a,b")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-bracket", action="store_true",
                        help="with rows a and b, run a once (before b), not before and after")
    parser.add_argument("--out", default=str(REPO / "artifacts" / "framework_tax"),
                        help="logs and pipeline artifacts (each row's own root)")
    args = parser.parse_args()
    rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {sorted(ROWS)}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, flags = cpu()
    print(f"CPU: {model}, {os.cpu_count()} logical cores; flags: {' '.join(flags)}")
    print(f"seed {args.seed}; logs in {out}\n", flush=True)
    runs = [(row, row) for row in rows]
    if "a" in rows and "b" in rows and not args.no_bracket:  # a, b, a again, then c
        runs.insert([name for name, _ in runs].index("b") + 1, ("a_after", "a"))
    results = {}
    for name, row in runs:
        results[name] = run_row(row, args.seed, out, name)
        show(results[name])
        sys.stdout.flush()
    compare(results)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0 if all(result["exit"] == 0 for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
