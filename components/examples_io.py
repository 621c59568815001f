"""Readers of an Examples artifact (the TFDS dataset written by ingest), for every other stage.

All of them go through `tfds.builder_from_directory`, so they read exactly what TFDS users
would. Examples are returned in file order (no shuffling): callers shuffle if they train.
TensorFlow and TFDS are imported inside the functions so importing this module is cheap.
"""

from __future__ import annotations

import functools
import os
import pathlib

import numpy as np


@functools.lru_cache(maxsize=16)
def _builder(path: str):
    import tensorflow_datasets as tfds

    folder = pathlib.Path(path)
    if not (folder / "dataset_info.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not an Examples dataset: dataset_info.json is missing "
            "(pass the `examples` artifact written by the ingest stage)."
        )
    return tfds.builder_from_directory(str(folder))


def _builder_for(path) -> object:
    return _builder(os.fspath(path))


def features(path):
    """The TFDS FeaturesDict of the dataset (decodes serialized examples)."""
    return _builder_for(path).info.features


def split_names(path) -> list[str]:
    """The dataset's splits, e.g. ['train', 'validation', 'test']."""
    return list(_builder_for(path).info.splits)


def class_names(path) -> list[str]:
    """Class names in label-index order."""
    return list(_builder_for(path).info.features["label"].names)


def input_shape(path) -> tuple[int, ...]:
    """Shape of one image, e.g. (28, 28, 1)."""
    return tuple(_builder_for(path).info.features["image"].shape)


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
    """tf.data.Dataset of {"id": tf.string, "image": uint8 [H, W, C], "label": int64}."""
    builder = _check_split(path, split)
    return builder.as_dataset(split=split, shuffle_files=False)


def load_numpy(path, split: str) -> dict[str, np.ndarray]:
    """The whole split in memory: id (str), image uint8 [N, H, W, C], label int64."""
    import tensorflow_datasets as tfds

    builder = _check_split(path, split)
    size = split_size(path, split)
    if size == 0:
        return {
            "id": np.array([], dtype=str),
            "image": np.zeros((0, *input_shape(path)), dtype=np.uint8),
            "label": np.zeros((0,), dtype=np.int64),
        }
    batch = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False, batch_size=-1))
    return {
        "id": np.array([value.decode("utf-8") for value in batch["id"]]),
        "image": batch["image"].astype(np.uint8, copy=False),
        "label": batch["label"].astype(np.int64, copy=False),
    }
