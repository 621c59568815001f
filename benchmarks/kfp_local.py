"""How long does the compiled pipeline take under kfp.local, against `edgepipe run`? Measured
in one run, on the tiny quickstart of the tests (300 train and 100 test images, one epoch).

(a) `edgepipe run CONFIG` in one process; (b) `edgepipe compile CONFIG -o pipeline.yaml`, then
the spec loaded back and run by kfp.local's SubprocessRunner (one process per task) into a new
root. Prints both times, their ratio, and whether every stage got the same cache key and the
same metrics (measured durations aside); exits 1 if not.

    nice -n 10 .venv/bin/python benchmarks/kfp_local.py
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import SAMPLE, write_idx_subset  # noqa: E402
from tests.e2e.test_kfp_local import same_metrics  # noqa: E402


def tiny_config(folder: pathlib.Path) -> pathlib.Path:
    text = (REPO / "configs" / "quickstart.toml").read_text()
    for prefix, count in (("train", 300), ("t10k", 100)):
        for part in ("images", "labels"):
            name = f"{prefix}-{part}-idx{3 if part == 'images' else 1}-ubyte.gz"
            write_idx_subset(SAMPLE / name, folder / name, count)
            text = text.replace(f'"../data/fashion_mnist/{name}"', f'"{folder / name}"')
    text = text.replace('root = "../artifacts/quickstart"', f'root = "{folder / "root"}"')
    text = text.replace('path = "../artifacts/registry"', f'path = "{folder / "registry"}"')
    text = text.replace("epochs = 8", "epochs = 1").replace("min_accuracy = 0.80",
                                                            "min_accuracy = 0.30")
    text = text.replace("representative_examples = 200", "representative_examples = 20")
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


def main() -> int:
    from kfp import components, local

    from edgepipe.pipeline.store import Store

    folder = pathlib.Path(tempfile.mkdtemp(prefix="kfp-local-bench-"))
    config = tiny_config(folder)
    edgepipe = [sys.executable, "-m", "edgepipe"]
    started = time.monotonic()
    subprocess.run([*edgepipe, "run", str(config)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_seconds = time.monotonic() - started
    summary = json.loads((folder / "root" / "runs" / "latest.json").read_text())
    spec = folder / "pipeline.yaml"
    subprocess.run([*edgepipe, "compile", str(config), "-o", str(spec)], check=True, cwd=REPO)
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(folder / "kfp-outputs"))
    started = time.monotonic()
    components.load_component_from_file(str(spec))(root=str(folder / "kfp-root"),
                                                   config_dir=str(folder))
    kfp_seconds = time.monotonic() - started
    store, same = Store(folder / "kfp-root"), True
    for stage in summary["stages"]:
        record = store.lookup(stage["name"], stage["key"])
        agree = record is not None and same_metrics(stage["name"], record["properties"],
                                                    stage["metrics"])
        same &= agree
        print(f"  {stage['name']:<11} key {stage['key']}  {'same' if agree else 'DIFFERENT'}")
    print(f"edgepipe run: {run_seconds:.1f} s; kfp.local (7 task processes): {kfp_seconds:.1f} s;"
          f" ratio {kfp_seconds / run_seconds:.2f}; load average {os.getloadavg()[0]:.1f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
