"""Write the PNG folders of data/fashion_mnist_png/ from the committed IDX sample.

Reproduces data/fashion_mnist_png/ byte for byte from data/fashion_mnist/ (itself cut from
Debian's dataset-fashion-mnist, see data/README.md):

    train/<class>/<index>.png   the first 40 training images of each class (400)
    test/<class>/<index>.png    the first 50 test images of each class (500)
    unlabeled/<index>.png       the next 1,600 training images, class not given (1,600)
    unlabeled_truth.csv         their true classes (id,label), for the report's pseudo-label
                                accuracy only: training never reads it

<index> is the record's index in the IDX file; class folders are the Fashion-MNIST class
names with "/" as "-" ("T-shirt-top").

    .venv/bin/python data/make_fashion_mnist_png.py
"""

import gzip
import io
import pathlib
import shutil
import struct
import sys

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "fashion_mnist"
TARGET = HERE / "fashion_mnist_png"
CLASSES = ["T-shirt-top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TRAIN_PER_CLASS, TEST_PER_CLASS, UNLABELED = 40, 50, 1600


def read(name: str) -> np.ndarray:
    raw = gzip.decompress((SOURCE / name).read_bytes())
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def first_per_class(labels: np.ndarray, count: int) -> list[int]:
    return sorted(index for label in range(10)
                  for index in np.flatnonzero(labels == label)[:count].tolist())


def main() -> int:
    if TARGET.exists():
        shutil.rmtree(TARGET)
    train_images, train_labels = read("train-images-idx3-ubyte.gz"), read(
        "train-labels-idx1-ubyte.gz")
    test_images, test_labels = read("t10k-images-idx3-ubyte.gz"), read("t10k-labels-idx1-ubyte.gz")
    for split, images, labels, count in (("train", train_images, train_labels, TRAIN_PER_CLASS),
                                         ("test", test_images, test_labels, TEST_PER_CLASS)):
        chosen = first_per_class(labels, count)
        for index in chosen:
            folder = TARGET / split / CLASSES[labels[index]]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:05d}.png").write_bytes(png(images[index]))
        print(f"{split}: {len(chosen)} images")
    labelled = set(first_per_class(train_labels, TRAIN_PER_CLASS))
    unlabeled = [index for index in range(len(train_labels)) if index not in labelled]
    unlabeled = unlabeled[:UNLABELED]
    (TARGET / "unlabeled").mkdir(parents=True)
    lines = ["id,label"]
    for index in unlabeled:
        (TARGET / "unlabeled" / f"{index:05d}.png").write_bytes(png(train_images[index]))
        lines.append(f"unlabeled/{index:05d}.png,{CLASSES[train_labels[index]]}")
    (TARGET / "unlabeled_truth.csv").write_text("\n".join(lines) + "\n")
    print(f"unlabeled: {len(unlabeled)} images (records {unlabeled[0]}..{unlabeled[-1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
