"""`tfds`: a TFDS catalogue dataset by name (`name = "fashion_mnist"` or "name:version").

The dataset is taken from `data_dir` when it is prepared there (offline), else downloaded and
prepared when `download = true` and the network allows. Its own train/test splits are kept
(`train_split`, `test_split`). The shards are read like the tfrecord source, with the
dataset's own feature spec: the input feature is `feature_key` (default: the one Image,
float Tensor or Text feature), the label `label_key` (a ClassLabel; its names are the class
names unless class_names renames them). The id is "<shard file name>:<index>".
"""

from __future__ import annotations

import functools

import numpy as np

from edgepipe.components.ingest.sources import tfrecord

KIND = "tfds"
FIELDS = ("name", "download", "train_split", "test_split", "feature_key",
          "label_key")
REQUIRED = ("name",)


@functools.lru_cache(maxsize=4)
def _prepared_builder(name: str, data_dir: str | None, download: bool):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # noqa: BLE001  tfds raises several kinds for unknown names
        raise ValueError(f"[ingest] name = {name!r}: TFDS has no such dataset in its catalogue "
                         f"or in data_dir {data_dir} ({error}).") from None
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and download = "
                "false; prepare it there (tfds build) or allow the download.")
        try:
            builder.download_and_prepare()
        except Exception as error:  # noqa: BLE001  network errors vary by backend
            raise RuntimeError(
                f"TFDS dataset {name!r} could not be downloaded into {builder.data_dir} "
                f"({type(error).__name__}: {error}). Without network, prepare it elsewhere and "
                "copy the folder, or point [ingest] at local files.") from None
    return builder


def _builder(config):
    return _prepared_builder(config.name, config.data_dir, config.download)


def files(config) -> dict[str, list[str]]:
    builder = _builder(config)
    splits = {"train" if config.test_split else "all": config.train_split}
    if config.test_split:
        splits["test"] = config.test_split
    found = {}
    for origin, split in splits.items():
        if split not in builder.info.splits:
            raise ValueError(f"TFDS dataset {config.name!r} has no split {split!r}; it has "
                             f"{sorted(builder.info.splits)}.")
        found[origin] = sorted(str(path) for path in builder.info.splits[split].filepaths)
    return found


def describe(config) -> dict:
    import tensorflow_datasets as tfds

    features = _builder(config).info.features
    kinds = {name: kind for name, feature in features.items()
             for kind, matches in (
                 ("image", isinstance(feature, tfds.features.Image)),
                 ("text", isinstance(feature, tfds.features.Text)),
                 ("sequence", isinstance(feature, tfds.features.Tensor)
                  and len(feature.shape) == 2 and np.dtype(feature.np_dtype).kind == "f"))
             if matches}
    key = config.feature_key or next(iter(kinds), None)
    if key not in kinds:
        raise ValueError(f"TFDS dataset {config.name!r}: feature_key {key!r} is not an "
                         f"Image, Text or 2-D float Tensor feature; those are {kinds}.")
    label = features[config.label_key] if config.label_key in features else None
    if not isinstance(label, tfds.features.ClassLabel):
        raise ValueError(f"TFDS dataset {config.name!r}: label_key {config.label_key!r} is not "
                         f"a ClassLabel feature; features are {list(features)}.")
    names = list(config.class_names or label.names)
    if len(names) != label.num_classes:
        raise ValueError(f"[ingest] class_names has {len(names)} names but {config.name!r} has "
                         f"{label.num_classes} classes.")
    info = {"feature": kinds[key], "class_names": names, "feature_key": key,
            "label_key": config.label_key, "id_key": None, "channels": None}
    if kinds[key] == "image":
        info["shape"] = list(features[key].shape)
        if None in info["shape"]:
            raise ValueError(f"TFDS dataset {config.name!r}: images of varying size "
                             f"{features[key].shape} are not supported yet; use image_dir.")
    if kinds[key] == "sequence":
        info["channels"] = int(features[key].shape[1])
    return info


def read_units(config, origin: str) -> list:
    return [(origin, path) for path in files(config)[origin]]


read_unit = tfrecord.read_unit
expand = tfrecord.expand
