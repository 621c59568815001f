"""The ingest stage's record path: the Beam transforms that read raw records of any source,
check each one, assign it a split by its id, and encode it as a TFDS example.

Transforms are built by factories so that Beam is imported only when used; the per-element
functions are module-level so every runner can pickle them by reference.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from edgepipe.components.ingest.sources import SOURCES
from edgepipe.components.ingest.sources.config import Config
from edgepipe.components.shared import png

SPLITS = ("train", "validation", "test")
# Records of the `unlabeled` origin go to this split with label NO_LABEL (TFDS ClassLabel's
# own "no label" value); it exists only when [ingest] unlabeled is set.
UNLABELED = "unlabeled"
NO_LABEL = -1


def splits_of(config: Config) -> tuple[str, ...]:
    """The splits an ingest run writes: train/validation/test, plus unlabeled when asked."""
    return SPLITS + ((UNLABELED,) if config.unlabeled else ())


# ---------------------------------------------------------------- record-level logic


def validation_bucket(record_id: str) -> float:
    """A number in [0, 1) fixed by the id alone, so a record never changes split."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:8], "big") / 2.0**64


def assign_split(record_id: str, origin: str, validation_fraction: float,
                 test_fraction: float = 0.0) -> str:
    """test records stay in test, unlabeled ones in unlabeled; train records go to validation
    if their bucket is low; a source without its own test split ("all") gives the lowest
    buckets to test."""
    if origin in ("test", UNLABELED):
        return origin
    bucket = validation_bucket(record_id)
    if origin == "all":
        if bucket < test_fraction:
            return "test"
        bucket = (bucket - test_fraction) / (1.0 - test_fraction)
    return "validation" if bucket < validation_fraction else "train"


def rejection_reason(record: dict, info: dict) -> tuple[str, str] | None:
    """(reason, detail) if a parsed record cannot become an example, else None."""
    num_classes = len(info["class_names"])
    targets = info.get("target_names")
    if record.get("origin") == UNLABELED or info.get("label") == "none":
        pass  # no label to check (unlabelled records; a generation corpus has none at all)
    elif info.get("objects"):  # detection: the sources check each box and reject bad ones
        labels = record.get("objects", {}).get("label")
        if labels is None or len(labels) and not (0 <= min(labels) and max(labels) < num_classes):
            return "label_out_of_range", f"a box label is not in 0..{num_classes - 1}"
    elif targets:  # regression: the sources parse the targets and reject bad ones
        if record.get("target") is None or len(record["target"]) != len(targets):
            return "missing_target", f"the record has no value for each of {targets}"
    elif record.get("label") is None:
        return "missing_label", "the record has no class label"
    elif not 0 <= record["label"] < num_classes:
        return "label_out_of_range", (
            f"label {record['label']} is not in 0..{num_classes - 1} "
            f"(class_names has {num_classes} entries)")
    value = record[info["feature"]]
    if info["feature"] == "image" and list(value.shape) != list(info["shape"]):
        return "wrong_shape", f"image shape {list(value.shape)}, expected {info['shape']}"
    if info["feature"] == "sequence":
        if value.ndim != 2 or value.shape[1] != info["channels"]:
            return "wrong_channel_count", (
                f"sequence shape {list(value.shape)}, expected [steps, {info['channels']}]")
        if value.shape[0] == 0:
            return "empty_sequence", "the series has no steps"
        if not np.isfinite(value).all():
            return "non_finite_value", (
                f"{int((~np.isfinite(value)).sum())} NaN or infinite values")
    if info["feature"] == "audio" and list(value.shape) != list(info["shape"]):
        return "wrong_shape", f"audio shape {list(value.shape)}, expected {info['shape']}"
    if info["feature"] == "text" and not value.strip():
        return "empty_text", "the text is empty or only whitespace"
    return None


# ---------------------------------------------------------------- Beam transforms
# Transforms are built by factories so that Beam is imported only when used; the per-element
# functions are module-level so every runner can pickle them by reference. Each record is
# checked, assigned a split and encoded in one step (RouteRecords): per-element overhead in
# Beam is a large share of the cost, so the record path has as few steps as possible.


def tfds_features(info: dict):
    """The Examples feature spec (the contract every stage reads)."""
    import tensorflow_datasets as tfds

    if info["feature"] == "image":
        value = tfds.features.Image(shape=tuple(info["shape"]), dtype=np.uint8,
                                    encoding_format="png")
    elif info["feature"] == "sequence":
        value = tfds.features.Tensor(shape=(None, info["channels"]), dtype=np.float32)
    elif info["feature"] == "audio":  # float32 samples in [-1, 1] at info["sample_rate"]
        value = tfds.features.Tensor(
            shape=tuple(info["shape"]), dtype=np.float32,
            doc=tfds.features.Documentation(
                desc=f"audio: sample_rate {info['sample_rate']}"))
    else:
        value = tfds.features.Text()
    targets = info.get("target_names")
    if info.get("objects"):  # detection: TFDS's own layout for boxes (as in voc, coco)
        return tfds.features.FeaturesDict({
            "id": tfds.features.Text(), info["feature"]: value,
            "objects": tfds.features.Sequence({
                "bbox": tfds.features.BBoxFeature(),
                "label": tfds.features.ClassLabel(names=list(info["class_names"]))}),
        })
    if info.get("label") == "none":  # a generation corpus: the texts are their own labels
        return tfds.features.FeaturesDict({"id": tfds.features.Text(),
                                           info["feature"]: value})
    # Regression: float32 targets, one per target column, named in features.json's doc.
    label = (("target", tfds.features.Tensor(
        shape=(len(targets),), dtype=np.float32,
        doc=tfds.features.Documentation(desc="targets: " + json.dumps(list(targets)))))
        if targets else ("label", tfds.features.ClassLabel(names=list(info["class_names"]))))
    return tfds.features.FeaturesDict({
        "id": tfds.features.Text(),
        info["feature"]: value,
        label[0]: label[1],
    })


_FEATURES_CACHE: dict = {}


def features_of(info: dict):
    """The FeaturesDict of `info`, built once per worker process."""
    key = json.dumps(info, sort_keys=True)
    if key not in _FEATURES_CACHE:
        _FEATURES_CACHE[key] = tfds_features(info)
    return _FEATURES_CACHE[key]


def route(element: dict, info: dict, validation_fraction: float, test_fraction: float,
          features=None) -> tuple[str, Any]:
    """(split, serialized example) for a valid record, ("quarantine", JSON line) otherwise."""
    rejected = ((element["reason"], element["detail"]) if "reason" in element
                else rejection_reason(element, info))
    if rejected is not None:
        reason, detail = rejected
        return "quarantine", json.dumps({
            "source": element["source"], "id": element["id"], "split": element["origin"],
            "reason": reason, "detail": detail})
    # A source may fix the split itself (audio_dir: one speaker's clips stay together).
    split = element.get("split") or assign_split(element["id"], element["origin"],
                                                 validation_fraction, test_fraction)
    name = info["feature"]
    value = element[name]
    if name == "image" and value.dtype == np.uint8:  # TFDS takes encoded bytes as they are
        value = png.encode(value)
    if info.get("label") == "none":
        return split, (features or features_of(info)).serialize_example(
            {"id": element["id"], name: value})
    if info.get("objects"):
        label = ("objects", element["objects"])
    elif info.get("target_names"):  # unlabelled records get NaN targets (no label)
        label = ("target", np.full(len(info["target_names"]), np.nan, np.float32)
                 if split == UNLABELED else element["target"])
    else:
        label = ("label", NO_LABEL if split == UNLABELED else element["label"])
    return split, (features or features_of(info)).serialize_example(
        {"id": element["id"], name: value, label[0]: label[1]})


def _read_unit(unit, kind: str, config: Config, info: dict):
    return SOURCES[kind].read_unit(unit, config, info)


def _route_chunk(chunk, kind: str, info: dict, validation_fraction: float,
                 test_fraction: float):
    import apache_beam as beam

    counts: dict[str, int] = {}
    features = features_of(info)
    for element in SOURCES[kind].expand(chunk, info):
        counts[element["origin"]] = counts.get(element["origin"], 0) + 1
        split, value = route(element, info, validation_fraction, test_fraction, features)
        yield beam.pvalue.TaggedOutput(split, value)
        if split == UNLABELED:  # where a person finds the record to label it
            yield beam.pvalue.TaggedOutput("sources", json.dumps(
                {"id": element["id"], "source": element["source"]}))
    for origin, count in counts.items():  # one count per chunk, not per record
        yield beam.pvalue.TaggedOutput("read", (origin, count))


def ReadChunks(config: Config, info: dict):
    """PBegin -> chunks of raw records of every origin, spread over the workers. Each chunk
    carries its origin, so one chain serves train and test: the workers share one stage
    instead of waiting for each other at the end of a per-origin stage."""
    import apache_beam as beam

    source = SOURCES[config.source]
    units = [unit for origin in source.files(config) for unit in source.read_units(config, origin)]

    @beam.ptransform_fn
    def read_chunks(pbegin):
        return (pbegin
                | "Units" >> beam.Create(units)
                | "ReadChunks" >> beam.FlatMap(_read_unit, config.source, config, info)
                | "Spread" >> beam.Reshuffle())

    return read_chunks()


def RouteRecords(config: Config, info: dict):
    """chunks -> tagged outputs: one per split (serialized examples), "quarantine" (JSON
    lines of rejected records), "read" ((origin, count) per chunk) and "sources" (JSON lines
    {"id", "source"} of the unlabeled records)."""
    import apache_beam as beam

    return beam.FlatMap(_route_chunk, config.source, info, config.validation_fraction,
                        config.test_fraction).with_outputs("quarantine", "read", "sources",
                                                           *SPLITS, UNLABELED)
