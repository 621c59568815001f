"""Write an object-detection set in Pascal VOC's layout from real Fashion-MNIST items.

Each image is a varied background (a two-colour gradient with noise and a few soft blobs) with
1..max_objects real Fashion-MNIST items pasted at random sizes and positions, each tinted a
random colour and cut out by its own pixels (an item's dark surround stays background); its box
is the tight box of the pasted pixels. A share of the images has no item (background images).
Train images take items from the IDX train file, test images from the test file, so no item
is seen in both. Seeded: the same arguments write the same files.

    .venv/bin/python data/make_detection_set.py OUT [--train 3000] [--test 500] [--size 128]
        [--classes Trouser,Bag,...] [--source data/fashion_mnist] [--seed 0]

writes OUT/{train,test}/{Annotations/<id>.xml, JPEGImages/<id>.jpg} and OUT/classes.txt.
--source /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist) draws from the
full 60k/10k set; the default is the committed 6k/1k sample.
"""

from __future__ import annotations

import argparse
import gzip
import pathlib
import struct
import sys
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Five classes a person tells apart at a glance: the shipped config's set.
DEFAULT_CLASSES = ["T-shirt/top", "Trouser", "Sandal", "Bag", "Ankle boot"]
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: pathlib.Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    dims = struct.unpack(f">{raw[3]}I", raw[4:4 + 4 * raw[3]])
    return np.frombuffer(raw[4 + 4 * raw[3]:], dtype=np.uint8).reshape(dims)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float32 [size, size, 3] background in 0..255: gradient, blobs, noise."""
    first, second = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    rows, columns = np.mgrid[0:size, 0:size] / size
    ramp = (np.cos(angle) * columns + np.sin(angle) * rows)
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
    image = first + ramp[..., None] * (second - first)
    for _ in range(rng.integers(0, 4)):
        centre, radius = rng.uniform(0, size, 2), rng.uniform(size / 10, size / 3)
        weight = np.exp(-((rows * size - centre[0]) ** 2 + (columns * size - centre[1]) ** 2)
                        / (2 * radius ** 2))
        image += weight[..., None] * rng.uniform(-80, 80, 3)
    image += rng.normal(0, rng.uniform(2, 12), image.shape)
    return np.clip(image, 0, 255).astype(np.float32)


def iou(first, second) -> float:
    x1, y1 = max(first[0], second[0]), max(first[1], second[1])
    x2, y2 = min(first[2], second[2]), min(first[3], second[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area(first) + area(second) - inter)


def paste(rng, canvas: np.ndarray, item: np.ndarray, taken: list) -> list[int] | None:
    """Paste one item at a random size and free place; its tight box, or None if no place."""
    size = canvas.shape[0]
    side = int(rng.integers(round(size * 0.18), round(size * 0.42) + 1))
    scaled = np.asarray(Image.fromarray(item).resize((side, side), Image.BILINEAR),
                        np.float32) / 255.0
    mask = np.clip((scaled - 0.08) / 0.25, 0, 1)  # the item's dark surround is not the item
    rows, columns = np.nonzero(mask > 0.5)
    if not len(rows):
        return None
    for _ in range(20):
        top, left = rng.integers(0, size - side + 1, 2)
        box = [int(left + columns.min()), int(top + rows.min()),
               int(left + columns.max() + 1), int(top + rows.max() + 1)]
        if all(iou(box, other) < 0.05 for other in taken):
            colour = rng.uniform(0, 255, 3)
            shade = 0.35 + 0.65 * scaled[..., None]  # keep the item's texture
            region = canvas[top:top + side, left:left + side]
            region[:] = region * (1 - mask[..., None]) + (colour * shade) * mask[..., None]
            return box
    return None


def annotation(image_id: str, size: int, objects: list) -> str:
    parts = [f"<annotation><folder>JPEGImages</folder><filename>{image_id}.jpg</filename>",
             f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size>"]
    for name, (xmin, ymin, xmax, ymax) in objects:
        parts.append(f"<object><name>{escape(name)}</name><difficult>0</difficult><bndbox>"
                     f"<xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax>"
                     f"<ymax>{ymax}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def write_split(out: pathlib.Path, split: str, count: int, images, labels, classes, size: int,
                max_objects: int, rng: np.random.Generator) -> int:
    chosen = np.flatnonzero(np.isin(labels, [CLASSES.index(name) for name in classes]))
    (out / split / "Annotations").mkdir(parents=True, exist_ok=True)
    (out / split / "JPEGImages").mkdir(parents=True, exist_ok=True)
    boxes = 0
    for index in range(count):
        canvas = background(rng, size)
        objects: list = []
        wanted = 0 if rng.random() < 0.05 else int(rng.integers(1, max_objects + 1))
        for item in rng.choice(chosen, wanted, replace=False):
            box = paste(rng, canvas, images[item], [box for _, box in objects])
            if box is not None:
                objects.append((CLASSES[labels[item]], box))
        image_id = f"{split}_{index:05d}"
        Image.fromarray(canvas.round().astype(np.uint8)).save(
            out / split / "JPEGImages" / f"{image_id}.jpg", quality=92)
        (out / split / "Annotations" / f"{image_id}.xml").write_text(
            annotation(image_id, size, objects))
        boxes += len(objects)
    return boxes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--max-objects", type=int, default=4)
    parser.add_argument("--classes", default=",".join(DEFAULT_CLASSES))
    parser.add_argument("--source", type=pathlib.Path, default=HERE / "fashion_mnist")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    classes = [name.strip() for name in args.classes.split(",")]
    unknown = [name for name in classes if name not in CLASSES]
    if unknown:
        sys.exit(f"--classes: {unknown} are not Fashion-MNIST classes {CLASSES}")
    rng = np.random.default_rng(args.seed)
    for split, count in (("train", args.train), ("test", args.test)):
        images, labels = (read_idx(args.source / name) for name in FILES[split])
        boxes = write_split(args.out, split, count, images, labels, classes, args.size,
                            args.max_objects, rng)
        print(f"{split}: {count} images, {boxes} boxes -> {args.out / split}")
    (args.out / "classes.txt").write_text("\n".join(classes) + "\n")


if __name__ == "__main__":
    main()
