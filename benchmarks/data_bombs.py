"""Replays the data bombs of issue 27 at full size and measures what each one costs.

Each case runs in a fresh process (the real ingest stage through the real Store, or the CLI);
the parent reads the child's peak resident memory (wait4's ru_maxrss) and wall time. The
baseline is the same ingest of the same 100 honest IDX records, measured in the same run;
every case prints its ratio to it and what it costs beyond it (+MB, +s). A case must stay
under 500 MB and 30 s, either whole or beyond the baseline; exit 1 otherwise. (Ingest never
imports TensorFlow, whose import alone costs about 600 MB: the honest ingest peaks near 200 MB.)

    .venv/bin/python benchmarks/data_bombs.py              # every case
    .venv/bin/python benchmarks/data_bombs.py --case gzip_bomb
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from framework_tax import cpu  # noqa: E402  the CPU model and flags, as every benchmark prints
SAMPLE = REPO / "data" / "fashion_mnist"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MAX_MB, MAX_SECONDS = 500, 30


# ---------------------------------------------------------------- the bombs, written to disk

def idx_files(folder: pathlib.Path) -> dict[str, str]:
    """The first 300 train and 100 test records of the committed sample, as IDX gz files."""
    files = {}
    for split, prefix, count in (("train", "train", 300), ("test", "t10k", 100)):
        for part in ("images", "labels"):
            name = f"{prefix}-{part}-idx{3 if part == 'images' else 1}-ubyte.gz"
            raw = gzip.decompress((SAMPLE / name).read_bytes())
            ndim = raw[3]
            dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
            record = 784 if part == "images" else 1
            head = raw[:4] + struct.pack(f">{ndim}I", count, *dims[1:])
            (folder / name).write_bytes(gzip.compress(head + raw[4 + 4 * ndim:][:count * record]))
            files[f"{split}_{part}"] = str(folder / name)
    return files


def test_images(files: dict[str, str]) -> bytes:
    return gzip.decompress(pathlib.Path(files["test_images"]).read_bytes())


def count_lie(folder: pathlib.Path, files: dict) -> dict:
    """A header declaring 5,000,000 images over the 100 real ones."""
    raw = test_images(files)
    path = folder / "lie-images-idx3-ubyte"
    path.write_bytes(raw[:4] + struct.pack(">I", 5_000_000) + raw[8:])
    return {**files, "test_images": str(path)}


def gzip_bomb(folder: pathlib.Path, files: dict) -> dict:
    """A 1.1 MB .gz: a header for 100 images, their pixels, then 1 GiB of zeros."""
    path = folder / "bomb-images-idx3-ubyte.gz"
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    with open(path, "wb") as out:
        out.write(stream.compress(test_images(files)))
        for _ in range(1024):
            out.write(stream.compress(block))
        out.write(stream.flush())
    return {**files, "test_images": str(path)}


def png_of_zeros(path: pathlib.Path, size: int) -> None:
    """A real size x size 8-bit gray PNG of zeros, written row block by row block."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    stream = zlib.compressobj(9)
    rows = bytes((size + 1) * 500)  # 500 rows, filter byte 0 each
    body = b"".join(stream.compress(rows) for _ in range(size // 500)) + stream.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def huge_pngs(folder: pathlib.Path) -> pathlib.Path:
    """An image folder of 2 x 200 small PNGs plus a 20000x20000 and a 12000x12000 one."""
    from edgepipe.components.shared import png

    import numpy as np

    root = folder / "images"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for index in range(200):
            (root / label / f"{index}.png").write_bytes(
                png.encode(np.full((28, 28, 1), index % 256, np.uint8)))
    png_of_zeros(root / "a" / "huge-20000.png", 20_000)
    png_of_zeros(root / "b" / "huge-12000.png", 12_000)
    return root


def long_field_csv(folder: pathlib.Path) -> pathlib.Path:
    """1,000 rows of 3 columns, one of them a 200 KB field."""
    path = folder / "table.csv"
    lines = ["label,c0,c1,c2"] + [f"{'ab'[row % 2]},{row},{row % 7},0" for row in range(1000)]
    lines.insert(500, "a," + "1" * 200_000 + ",0,0")
    path.write_text("\n".join(lines) + "\n")
    return path


def many_classes(folder: pathlib.Path) -> pathlib.Path:
    """10,000 classes of one 28x28 PNG each."""
    from edgepipe.components.shared import png

    import numpy as np

    root = folder / "classes"
    image = png.encode(np.zeros((28, 28, 1), np.uint8))
    for index in range(10_000):
        (root / f"class{index:05d}").mkdir(parents=True)
        (root / f"class{index:05d}" / "0.png").write_bytes(image)
    return root


# ---------------------------------------------------------------- one case, in a child process

def run_ingest(config: dict, root: pathlib.Path) -> str:
    from edgepipe.components.ingest import stage as ingest
    from edgepipe.pipeline.stage import Context, Runtime
    from edgepipe.pipeline.store import Store

    parsed = ingest.Config.model_validate(config, context={"base_dir": REPO})
    context = Context(pipeline_name="bombs", run_id="bombs", seed=0, runtime=Runtime(),
                      scratch_dir=Store(root).scratch_dir("ingest", "bomb"))
    try:
        result, _ = Store(root).execute(ingest.SPEC, "bomb", {}, parsed, context)
    except ValueError as error:
        return f"refused: {str(error)[:300]}"
    return (f"ingested: {result.properties['splits']}, quarantined "
            f"{result.properties['quarantined']['by_reason']}")


def idx_config(files: dict) -> dict:
    return {"source": "idx", **files, "class_names": CLASS_NAMES}


def child(case: str, folder: pathlib.Path) -> str:
    files = json.loads((folder / "files.json").read_text())
    root = folder / f"root-{case}"
    if case == "baseline":
        return run_ingest(idx_config(files), root)
    if case == "idx_count_lie":
        return run_ingest(idx_config(files | {"test_images": str(folder / "lie-images-idx3-ubyte")}),
                          root)
    if case == "gzip_bomb":
        return run_ingest(idx_config(files | {"test_images": str(
            folder / "bomb-images-idx3-ubyte.gz")}), root)
    if case == "huge_png_headers":
        return run_ingest({"source": "image_dir", "train": str(folder / "images"),
                           "image_shape": [28, 28, 1]}, root)
    if case == "csv_200kb_field":
        return run_ingest({"source": "csv", "train": str(folder / "table.csv"),
                           "label_column": "label", "columns_as": "channels"}, root)
    if case == "many_classes":
        return run_ingest({"source": "image_dir", "train": str(folder / "classes")}, root)
    if case in ("dev_zero_run", "dev_zero_status"):
        command = case.rsplit("_", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "edgepipe", command, "configs/quickstart.toml", "--root",
             str(root), "--set", "ingest.train_images=/dev/zero"],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        return f"exit {result.returncode}: {result.stderr.strip().splitlines()[-1][:200]}"
    raise ValueError(f"unknown case {case!r}")


CASES = ("baseline", "idx_count_lie", "gzip_bomb", "huge_png_headers", "csv_200kb_field",
         "dev_zero_run", "dev_zero_status", "many_classes")


def measure(case: str, folder: pathlib.Path) -> dict:
    """Peak resident memory (MB: the child, or its own child for the CLI cases, as the child
    reads it from getrusage) and wall seconds, in a fresh process."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, __file__, "--child", case, "--folder",
                                str(folder)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    peak = _peak_mb(stdout)
    outcome = next((line[8:] for line in stdout.splitlines() if line.startswith("OUTCOME ")),
                   f"crashed: {stderr.strip().splitlines()[-1] if stderr.strip() else '?'}")
    return {"case": case, "peak_mb": peak, "seconds": round(seconds, 2), "outcome": outcome}


def _peak_mb(stdout: str) -> float:
    match = re.search(r"^PEAK_KB (\d+)$", stdout, re.MULTILINE)
    return round(int(match[1]) / 1024, 1) if match else float("nan")


def prepare(folder: pathlib.Path) -> None:
    files = idx_files(folder)
    (folder / "files.json").write_text(json.dumps(files))
    count_lie(folder, files)
    gzip_bomb(folder, files)
    huge_pngs(folder)
    long_field_csv(folder)
    many_classes(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=CASES, help="only this case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import resource

        outcome = child(args.child, pathlib.Path(args.folder))
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        print(f"OUTCOME {outcome}\nPEAK_KB {peak}", flush=True)
        return 0
    model, flags = cpu()
    print(f"CPU: {model}; flags: {' '.join(flags)}; {os.cpu_count()} logical CPUs")
    with tempfile.TemporaryDirectory(prefix="edgepipe-bombs-") as temporary:
        folder = pathlib.Path(temporary)
        started = time.monotonic()
        prepare(folder)
        bomb = (folder / "bomb-images-idx3-ubyte.gz").stat().st_size
        print(f"bombs written in {time.monotonic() - started:.1f} s (gzip bomb {bomb / 1e6:.2f} MB "
              "for 1 GiB of zeros)\n")
        cases = ["baseline"] + [case for case in (args.case or CASES) if case != "baseline"]
        rows = [measure(case, folder) for case in cases]
    baseline = rows[0]
    print(f"{'case':<18} {'peak MB':>8} {'x base':>7} {'+MB':>7} {'seconds':>8} {'x base':>7} "
          f"{'+s':>6}  outcome")
    failed = False
    for row in rows:
        extra_mb = max(0.0, row["peak_mb"] - baseline["peak_mb"])
        extra_s = max(0.0, row["seconds"] - baseline["seconds"])
        # What the bomb costs beyond the honest ingest of the same stage (whose own footprint
        # is mostly importing TensorFlow); a case refused before that import is measured whole.
        over = (min(row["peak_mb"], extra_mb) > MAX_MB or min(row["seconds"], extra_s) > MAX_SECONDS
                or not row["peak_mb"] > 0 or row["outcome"].startswith("crashed"))
        failed |= over
        print(f"{row['case']:<18} {row['peak_mb']:8.1f} {row['peak_mb'] / baseline['peak_mb']:7.2f} "
              f"{extra_mb:7.1f} {row['seconds']:8.2f} {row['seconds'] / baseline['seconds']:7.2f} "
              f"{extra_s:6.1f}  {'OVER LIMIT ' if over else ''}{row['outcome']}")
    print(f"\nlimits: {MAX_MB} MB and {MAX_SECONDS} s per case, whole or beyond the honest "
          f"baseline: {'FAILED' if failed else 'all within'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
