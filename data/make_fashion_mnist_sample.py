"""Cut the committed Fashion-MNIST sample out of the full dataset.

Reproduces data/fashion_mnist/ byte for byte from Debian's `dataset-fashion-mnist`
package: the first 6,000 training and the first 1,000 test examples, kept in the
original IDX format (big-endian header, then raw uint8), gzip-compressed with a fixed
mtime so the files are identical on every machine.

    apt-get install dataset-fashion-mnist
    python data/make_fashion_mnist_sample.py
"""

import gzip
import pathlib
import struct
import sys

SOURCE = pathlib.Path("/usr/share/datasets/fashion-mnist")
TARGET = pathlib.Path(__file__).resolve().parent / "fashion_mnist"
COUNTS = {"train": 6000, "t10k": 1000}


def _cut(name: str, count: int) -> None:
    raw = gzip.decompress((SOURCE / name).read_bytes())
    magic, total = struct.unpack(">II", raw[:8])
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    header_size = 4 + 4 * ndim
    record_size = 1
    for dim in dims[1:]:
        record_size *= dim
    header = struct.pack(">I", magic) + struct.pack(f">{ndim}I", count, *dims[1:])
    body = raw[header_size : header_size + count * record_size]
    with open(TARGET / name, "wb") as handle:
        with gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as gz:
            gz.write(header + body)
    print(f"{name}: {count} of {total} records")


def main() -> int:
    TARGET.mkdir(parents=True, exist_ok=True)
    for prefix, count in COUNTS.items():
        _cut(f"{prefix}-images-idx3-ubyte.gz", count)
        _cut(f"{prefix}-labels-idx1-ubyte.gz", count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
