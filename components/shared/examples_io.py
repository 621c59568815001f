"""Readers of an Examples artifact (the TFDS dataset written by ingest), for every other stage.

All of them go through `tfds.builder_from_directory`, so they read exactly what TFDS users
would. Examples are returned in file order (no shuffling): callers shuffle if they train.
TensorFlow and TFDS are imported inside the functions so importing this module is cheap.

A dataset on an object store (a gs:// URI: the statistics stage's input on a bucket root)
is described from a local copy of its metadata files (dataset_info.json, features.json, the
label names), fetched through edgepipe.contracts.storage: its features, splits and class
names work, and Beam reads its shards; `as_dataset` and `load_numpy` need a local folder
(the TensorFlow stages get one from the store).
"""

from __future__ import annotations

import functools
import os
import pathlib

import numpy as np

from edgepipe.contracts import artifacts, storage


@functools.lru_cache(maxsize=16)
def _builder(path: str):
    import tensorflow_datasets as tfds

    folder = _metadata_copy(path) if storage.is_remote(path) else pathlib.Path(path)
    if not (folder / artifacts.DATASET_INFO).is_file():
        raise FileNotFoundError(
            f"{folder} is not an Examples dataset: dataset_info.json is missing "
            "(pass the `examples` artifact written by the ingest stage)."
        )
    return tfds.builder_from_directory(str(folder))


def _metadata_copy(uri: str) -> pathlib.Path:
    """A local folder with the dataset's metadata files (no shards: TFDS reads only their
    names, from dataset_info.json), fetched once per process."""
    import hashlib

    folder = storage.cache_dir("examples-metadata", hashlib.sha256(uri.encode()).hexdigest()[:16])
    for name in storage.listdir(uri):
        if ".tfrecord-" not in name and name != "quarantine":  # atomic: workers share it
            storage.write_bytes(folder / name, storage.read_bytes(storage.join(uri, name)))
    return folder


def _builder_for(path) -> object:
    return _builder(os.fspath(path))


def features(path):
    """The TFDS FeaturesDict of the dataset (decodes serialized examples)."""
    return _builder_for(path).info.features


def split_names(path) -> list[str]:
    """The dataset's splits, e.g. ['train', 'validation', 'test']."""
    return list(_builder_for(path).info.splits)


def label_feature(path) -> str:
    """The feature holding the label: "label" (a class index), "target" (float32 values
    of the regression targets) or "objects" (boxes and their classes, detection); see
    edgepipe.contracts.tasks."""
    features = _builder_for(path).info.features
    return next((name for name in ("target", "objects") if name in features), "label")


def class_names(path) -> list[str]:
    """Class names in label-index order ([] for a dataset of numeric targets)."""
    features = _builder_for(path).info.features
    if "objects" in features:
        return list(features["objects"]["label"].names)
    return list(features["label"].names) if "label" in features else []


def target_names(path) -> list[str]:
    """The regression targets' column names, in order ([] for a dataset of class labels)."""
    import json

    features = _builder_for(path).info.features
    if "target" not in features:
        return []
    description = features["target"].doc.desc
    if not description.startswith("targets: "):
        raise ValueError(f"{path}: the target feature does not name its columns; re-run the "
                         "ingest stage.")
    return list(json.loads(description.removeprefix("targets: ")))


def sample_rate(path) -> int:
    """The sample rate (Hz) of an audio dataset's clips, from the feature's documentation."""
    description = _builder_for(path).info.features["audio"].doc.desc
    if not description.startswith("audio: sample_rate "):
        raise ValueError(f"{path}: the audio feature does not state its sample rate; re-run "
                         "the ingest stage.")
    return int(description.removeprefix("audio: sample_rate "))


INPUT_FEATURES = ("image", "sequence", "text", "audio")


def input_feature(path) -> str:
    """The name of the dataset's one input feature: "image", "sequence", "text" or "audio"."""
    names = [name for name in INPUT_FEATURES if name in _builder_for(path).info.features]
    if len(names) != 1:
        raise ValueError(f"{path}: expected exactly one input feature of {INPUT_FEATURES}, "
                         f"found {names}; was it written by the ingest stage?")
    return names[0]


def input_shape(path) -> tuple:
    """Shape of one input: (H, W, C) for images, (None, C) for sequences, () for text,
    (samples,) for audio."""
    return tuple(_builder_for(path).info.features[input_feature(path)].shape)


def _check_split(path, split: str):
    builder = _builder_for(path)
    if split not in builder.info.splits:
        raise KeyError(
            f"{path} has no split {split!r}; it has {sorted(builder.info.splits)}."
        )
    return builder


def split_size(path, split: str) -> int:
    """Number of examples in a split."""
    return int(_check_split(path, split).info.splits[split].num_examples)


def as_dataset(path, split: str):
    """tf.data.Dataset of {"id": tf.string, <input feature>, "label": int64}: "image" uint8
    [H, W, C], "sequence" float32 [steps, C] (steps vary) or "text" tf.string."""
    builder = _check_split(path, split)
    return builder.as_dataset(split=split, shuffle_files=False)


def leading_per_class(path, split: str, per_class: int,
                      num_classes: int) -> dict[str, np.ndarray]:
    """load_numpy's arrays of the split's leading records, read in file order only until
    every class has `per_class` of them (or the split ends): the records a report shows as
    the first examples of each class, without decoding the whole split."""
    import tensorflow_datasets as tfds

    feature = input_feature(path)
    counts = np.zeros(num_classes, dtype=np.int64)
    rows = []
    for example in tfds.as_numpy(_check_split(path, split).as_dataset(split=split,
                                                                      shuffle_files=False)):
        rows.append(example)
        label = int(example["label"])
        if 0 <= label < num_classes:
            counts[label] += 1
        if counts.min() >= per_class:
            break
    values = [row[feature] for row in rows]
    if feature == "image":
        values = np.stack(values).astype(np.uint8) if values else np.zeros(
            (0, *input_shape(path)), dtype=np.uint8)
    elif feature == "audio":
        values = np.stack(values).astype(np.float32) if values else np.zeros(
            (0, *input_shape(path)), dtype=np.float32)
    elif feature == "sequence":
        values, sequences = np.empty((len(rows),), dtype=object), values
        for index, sequence in enumerate(sequences):
            values[index] = sequence.astype(np.float32, copy=False)
    else:
        values = np.array([value.decode("utf-8") for value in values])
    return {"id": np.array([row["id"].decode("utf-8") for row in rows]), feature: values,
            "label": np.array([row["label"] for row in rows], dtype=np.int64)}


def load_numpy(path, split: str) -> dict[str, np.ndarray]:
    """The whole split in memory: id (str), label int64 (or, for regression, target float32
    [N, k]; for detection, objects: an object array of N {"bbox": float32 [n, 4] (ymin, xmin,
    ymax, xmax) fractions, "label": int64 [n]}), and the input feature: image uint8 [N, H, W, C], sequence an object array of N
    float32 [steps, C] arrays, or text (str)."""
    import tensorflow_datasets as tfds

    builder = _check_split(path, split)
    feature, label = input_feature(path), label_feature(path)
    if split_size(path, split) == 0:
        empty = {"image": np.zeros((0, *input_shape(path)), dtype=np.uint8),
                 "audio": np.zeros((0, *input_shape(path)), dtype=np.float32),
                 "sequence": np.empty((0,), dtype=object), "text": np.array([], dtype=str)}
        return {"id": np.array([], dtype=str), feature: empty[feature],
                label: _labels([], label, len(target_names(path)))}
    if label == "objects":  # a variable number of boxes per image: one example at a time
        examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
        objects = np.empty((len(examples),), dtype=object)
        for index, example in enumerate(examples):
            objects[index] = {"bbox": example["objects"]["bbox"].astype(np.float32).reshape(-1, 4),
                              "label": example["objects"]["label"].astype(np.int64)}
        return {"id": np.array([example["id"].decode("utf-8") for example in examples]),
                "image": np.stack([example["image"] for example in examples]).astype(np.uint8),
                "objects": objects}
    if feature in ("image", "audio"):  # fixed shape: one batched read
        batch = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False,
                                                 batch_size=-1))
        values = batch[feature].astype(np.uint8 if feature == "image" else np.float32,
                                       copy=False)
        ids, labels = batch["id"], batch[label]
    else:  # variable-length values: one example at a time
        examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
        ids = [example["id"] for example in examples]
        labels = [example[label] for example in examples]
        if feature == "sequence":
            values = np.empty((len(examples),), dtype=object)
            for index, example in enumerate(examples):  # not values[:] = list: no broadcast
                values[index] = example["sequence"].astype(np.float32, copy=False)
        else:
            values = np.array([example["text"].decode("utf-8") for example in examples])
    return {
        "id": np.array([value.decode("utf-8") for value in ids]),
        feature: values,
        label: _labels(labels, label, len(target_names(path))),
    }


def _labels(values, label: str, num_targets: int) -> np.ndarray:
    """int64 class indices [N], or float32 targets [N, k] (objects: an empty object array)."""
    if label == "objects":
        return np.empty((0,), dtype=object)
    if label == "target":
        return np.asarray(values, dtype=np.float32).reshape(-1, num_targets)
    return np.asarray(values).astype(np.int64, copy=False).reshape(-1)


def load_texts(path, split: str) -> tuple[list[str], list[str]]:
    """(ids, texts) of a split of text examples without labels (a generation corpus), in
    file order."""
    import tensorflow_datasets as tfds

    if split not in split_names(path):
        return [], []
    ids, texts = [], []
    for example in tfds.as_numpy(_builder_for(path).as_dataset(split=split, shuffle_files=False)):
        ids.append(example["id"].decode("utf-8"))
        texts.append(example["text"].decode("utf-8"))
    return ids, texts
