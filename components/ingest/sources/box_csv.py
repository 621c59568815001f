"""`box_csv`: boxes in a CSV file, one row per box: `filename, xmin, ymin, xmax, ymax, label`
(a header row with these names; pixels of the image as displayed) (task detection).

`train` (and `test`) is the CSV file; `train_images` (`test_images`) the folder of its images
(default: the CSV file's folder). A row with a file name and nothing else marks a background
image. The id is the file name. Class names: `class_names`, or every label of the train file,
sorted. Bad boxes quarantine their image (components/ingest/sources/boxes.py).
"""

from __future__ import annotations

import csv
import io

from edgepipe.components.ingest.sources import boxes
from edgepipe.components.ingest.sources.common import read_bytes

KIND = "box_csv"
FIELDS = ("train", "test", "train_images", "test_images", "image_shape", "encoding")
REQUIRED = ("train", "image_shape")
COLUMNS = ("filename", "xmin", "ymin", "xmax", "ymax", "label")


def rows(path: str, encoding: str) -> dict[str, list]:
    """{file name: [(label, [xmin, ymin, xmax, ymax])]} in first-seen order."""
    text = read_bytes(path).decode(encoding)
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: the header lacks {missing}; expected the columns "
                         f"{', '.join(COLUMNS)}.")
    found: dict[str, list] = {}
    for row in reader:
        objects = found.setdefault((row["filename"] or "").strip(), [])
        corners = [(row[key] or "").strip() for key in COLUMNS[1:5]]
        label = (row["label"] or "").strip()
        if any(corners) or label:  # else: a background image's row
            objects.append((label, corners))
    return found


def files(config) -> dict[str, list[str]]:
    return boxes.annotated_files(config)


def describe(config) -> dict:
    names = list(config.class_names) or sorted(
        {label for objects in rows(config.train, config.encoding).values()
         for label, _ in objects if label})
    return boxes.describe(config, names, config.train)


def read_units(config, origin: str) -> list:
    path, folder = boxes.origins(config)[origin]
    items = list(rows(path, config.encoding).items())
    return boxes.chunks(origin, path, folder, items)


def read_unit(unit, config, info):
    yield unit


def expand(chunk, info):
    return boxes.expand_items(chunk, info)
