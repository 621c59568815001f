"""The statistics stage's Beam part: decode each serialized example (ingest's own PNGs with
components/shared/png.py, anything else with the dataset's TFDS features) and summarise a
split with one CombineFn.

The sums are exact: images keep a count per pixel value (0..255) and per image size;
sequences keep per-channel count, mean and sum of squared deviations (merged with Chan's
formula), min and max, and a count per length; texts keep a count per length in characters.
TensorFlow and Beam are imported inside functions; workers unpickle these by reference.
"""

from __future__ import annotations

import zlib

import numpy as np

from edgepipe.components.shared import examples_io, png
from edgepipe.components.statistics import audio, objects


_FEATURES_CACHE: dict = {}


def _decode(serialized: bytes, examples_dir: str, feature: str):
    """(decoded input value, label) of one serialized example; None where a value is missing."""
    import tensorflow as tf

    if examples_dir not in _FEATURES_CACHE:  # once per worker process
        _FEATURES_CACHE[examples_dir] = examples_io.features(examples_dir)
    spec = _FEATURES_CACHE[examples_dir][feature]
    example = tf.train.Example.FromString(serialized).features.feature
    labels = example["label"].int64_list.value if "label" in example else []
    label = int(labels[0]) if labels else None
    if "target" in example:  # regression: the targets (NaN in the unlabeled split)
        targets = list(example["target"].float_list.value)
        label = targets if targets and all(map(np.isfinite, targets)) else None
    if "objects/label" in example or "objects/bbox" in example:  # detection: the boxes
        label = objects.decode(example)
    if feature not in example:
        return None, label
    if feature in ("sequence", "audio"):
        values = np.asarray(example[feature].float_list.value, dtype=np.float32)
        return (spec.decode_example_np(values) if values.size else None), label
    encoded = example[feature].bytes_list.value
    if not encoded or not encoded[0]:
        return None, label
    if feature == "image":  # ingest's own PNGs in one zlib call, any other through TFDS
        try:
            image = png.decode_plain(encoded[0])
        except (ValueError, zlib.error) as error:
            record_id = b"".join(example["id"].bytes_list.value).decode("utf-8", "replace")
            raise ValueError(f"example {record_id!r} in {examples_dir}: its image is corrupt "
                             f"({error}); re-run the ingest stage (--no-cache).") from error
        return (spec.decode_example_np(encoded[0]) if image is None else image), label
    return encoded[0].decode("utf-8", errors="replace"), label


def _count(table: dict, key) -> None:
    table[key] = table.get(key, 0) + 1


class SplitStatistics:
    """The CombineFn methods over (value, label) pairs; see SplitStatisticsFn below."""

    def __init__(self, feature: str, channels: int = 0):
        self.feature, self.channels = feature, channels

    def create_accumulator(self):
        accumulator = {"count": 0, "value_missing": 0, "label_missing": 0, "labels": {},
                       "targets": [],  # regression: every example's targets
                       "sizes": {},  # image shapes "HxWxC", sequence/text lengths
                       "objects": objects.create()}  # detection: the boxes
        if self.feature == "image":
            accumulator["pixel_counts"] = np.zeros(256, dtype=np.int64)
        elif self.feature == "sequence":
            accumulator.update(steps=0, mean=np.zeros(self.channels), m2=np.zeros(self.channels),
                               min=np.full(self.channels, np.inf),
                               max=np.full(self.channels, -np.inf))
        elif self.feature == "audio":
            accumulator["audio"] = audio.create()
        else:
            accumulator["words"] = 0
        return accumulator

    def add_input(self, accumulator, element):
        value, label = element
        accumulator["count"] += 1
        if label is None:
            accumulator["label_missing"] += 1
        elif isinstance(label, list):
            accumulator["targets"].append(label)
        elif isinstance(label, tuple):
            objects.add(accumulator["objects"], *label)
        else:
            _count(accumulator["labels"], label)
        if value is None:
            accumulator["value_missing"] += 1
        elif self.feature == "image":
            accumulator["pixel_counts"] += np.bincount(value.ravel(), minlength=256)
            _count(accumulator["sizes"], "x".join(map(str, value.shape)))
        elif self.feature == "sequence":
            _count(accumulator["sizes"], len(value))
            values = value.astype(np.float64)
            mean = values.mean(axis=0)
            self._merge_moments(accumulator, len(values), mean, ((values - mean) ** 2).sum(0),
                                values.min(axis=0), values.max(axis=0))
        elif self.feature == "audio":
            audio.add(accumulator["audio"], value, label)
        else:
            _count(accumulator["sizes"], len(value))
            accumulator["words"] += len(value.split())
        return accumulator

    @staticmethod
    def _merge_moments(accumulator, steps, mean, m2, low, high):
        """Chan et al.'s parallel update of count, mean and M2 (sum of squared deviations)."""
        total = accumulator["steps"] + steps
        if not steps:
            return
        delta = mean - accumulator["mean"]
        accumulator["mean"] = accumulator["mean"] + delta * steps / total
        accumulator["m2"] = accumulator["m2"] + m2 + delta**2 * accumulator["steps"] * steps / total
        accumulator["steps"] = total
        accumulator["min"] = np.minimum(accumulator["min"], low)
        accumulator["max"] = np.maximum(accumulator["max"], high)

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for key in ("count", "value_missing", "label_missing", "pixel_counts", "words"):
                if key in merged:
                    merged[key] += accumulator[key]
            merged["targets"].extend(accumulator["targets"])
            objects.merge(merged["objects"], accumulator["objects"])
            for key in ("labels", "sizes"):
                for value, count in accumulator[key].items():
                    merged[key][value] = merged[key].get(value, 0) + count
            if self.feature == "audio":
                audio.merge(merged["audio"], accumulator["audio"])
            if self.feature == "sequence":
                self._merge_moments(merged, accumulator["steps"], accumulator["mean"],
                                    accumulator["m2"], accumulator["min"], accumulator["max"])
        return merged

    def extract_output(self, accumulator):
        return {key: value.tolist() if isinstance(value, np.ndarray) else value
                for key, value in accumulator.items()}


def __getattr__(name: str):
    """SplitStatisticsFn = SplitStatistics as a beam.CombineFn, made when first used (Beam is
    imported lazily); stored as a module global so workers unpickle it by reference."""
    if name != "SplitStatisticsFn":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in globals():
        return globals()[name]
    import apache_beam as beam

    combine_fn = type(name, (SplitStatistics, beam.CombineFn), {"__module__": __name__})
    globals()[name] = combine_fn
    return combine_fn


def ComputeSplitStatistics(examples_dir: str, feature: str = "image", channels: int = 0):
    """Serialized TFDS examples -> one dict of raw sums (see SplitStatistics)."""
    import apache_beam as beam

    @beam.ptransform_fn
    def compute_split_statistics(serialized):
        return (
            serialized
            | "Decode" >> beam.Map(_decode, examples_dir, feature)
            | "Combine" >> beam.CombineGlobally(
                __getattr__("SplitStatisticsFn")(feature, channels))
        )

    return compute_split_statistics()
