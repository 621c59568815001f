"""`voc`: Pascal VOC annotations, one XML file per image (task detection).

`train` (and `test`) is a folder in VOC's layout, `Annotations/*.xml` beside `JPEGImages/`
(VOC2007/VOC2012 as distributed), or a flat folder of images with their XML files. Each XML
names its image (`<filename>`) and its boxes (`<object><name>`, `<bndbox>` xmin ymin xmax
ymax in pixels of the image as displayed, EXIF orientation applied). The id is the XML
file's stem. Images are letterboxed to `[ingest] image_shape` with their boxes
(components/ingest/sources/boxes.py). Class names: `class_names`, or every `<name>` of the
train annotations, sorted.

The XML is parsed by defusedxml with DTDs forbidden: an entity bomb (billion laughs) or an
external entity is refused at its declaration, so a file costs what its own bytes cost.
"""

from __future__ import annotations

import os
import pathlib

from edgepipe.components.ingest.sources import boxes
from edgepipe.components.ingest.sources.common import is_uri, match, read_bytes, rejection

KIND = "voc"
FIELDS = ("train", "test", "image_shape")
REQUIRED = ("train", "image_shape")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHUNK_FILES = 200


def _folders(root: str) -> tuple[str, str]:
    """(annotations folder, images folder) of a VOC tree or a flat folder."""
    root = root.rstrip("/")
    annotations, images = f"{root}/Annotations", f"{root}/JPEGImages"
    if is_uri(root):
        return ((annotations, images) if match(annotations + "/*.xml") else (root, root))
    return (annotations if os.path.isdir(annotations) else root,
            images if os.path.isdir(images) else root)


def _origins(config) -> dict[str, str]:
    return {"train" if config.test else "all": config.train,
            **({"test": config.test} if config.test else {})}


def _annotations(root: str) -> list[str]:
    found = match(_folders(root)[0] + "/*.xml")
    if not found:
        raise ValueError(f"{root}: no .xml annotation files (looked in "
                         f"{_folders(root)[0]}); expected Pascal VOC's Annotations/*.xml.")
    return found


def files(config) -> dict[str, list[str]]:
    found = {}
    for origin, root in _origins(config).items():
        images = [path for path in match(_folders(root)[1] + "/*")
                  if path.lower().endswith(IMAGE_SUFFIXES)]
        found[origin] = sorted(_annotations(root) + images)
    return found


def parse(data: bytes):
    """(image file name, [(label, [xmin, ymin, xmax, ymax])]) of one VOC XML; raises
    ValueError saying what is wrong."""
    import defusedxml
    from defusedxml import ElementTree

    try:
        root = ElementTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException as error:
        raise ValueError(f"refused: the XML declares a DTD or entities ({error!r}); VOC "
                         "annotations have none") from None
    except ElementTree.ParseError as error:
        raise ValueError(f"not well-formed XML: {error}") from None
    filename = (root.findtext("filename") or "").strip()
    objects = []
    for index, element in enumerate(root.iter("object")):
        box = element.find("bndbox")
        if box is None:
            raise ValueError(f"object {index} has no <bndbox>")
        objects.append(((element.findtext("name") or "").strip(),
                        [(box.findtext(key) or "").strip()
                         for key in ("xmin", "ymin", "xmax", "ymax")]))
    return filename, objects


def describe(config) -> dict:
    names = list(config.class_names)
    if not names:
        found = set()
        for path in _annotations(config.train):
            try:
                found.update(name for name, _ in parse(read_bytes(path))[1] if name)
            except ValueError:
                continue  # expand quarantines it with the reason
        names = sorted(found)
    return boxes.describe(config, names, config.train)


def read_units(config, origin: str) -> list:
    root = _origins(config)[origin]
    paths = _annotations(root)
    return [(origin, _folders(root)[1], paths[start:start + CHUNK_FILES])
            for start in range(0, len(paths), CHUNK_FILES)]


def read_unit(unit, config, info):
    yield unit


def expand(chunk, info):
    origin, image_folder, paths = chunk
    for path in paths:
        record_id = pathlib.PurePosixPath(path).stem
        try:
            filename, objects = parse(read_bytes(path))
        except ValueError as error:
            yield rejection(record_id, path, origin, "bad_annotation", str(error))
            continue
        if not filename or "/" in filename or filename in (".", ".."):
            yield rejection(record_id, path, origin, "bad_annotation",
                            f"<filename> {filename!r} does not name an image file")
            continue
        yield boxes.image_record(record_id, path, origin, image_folder, filename, objects, info)
