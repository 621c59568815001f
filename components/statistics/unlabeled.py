"""The statistics stage's checks of the unlabeled split: overlap with the labelled splits
(a Beam pass) and drift of its input distribution from train's.

Overlap: an unlabelled record whose id, or whose stored input value (the same image, series
or text), also appears in train, validation or test is reported: pseudo-labelling it wastes
work, and a copy of a test record among the unlabelled data leaks the test split into
training. Drift: the L-infinity distance between the normalised distributions of train and
unlabeled (images: pixel values in the statistics' histogram bins; sequences and texts: the
length in steps or characters); past `[statistics] unlabeled_drift_threshold` it is a
warning, since pseudo-labels of data unlike the training data are less trustworthy.
Beam and TensorFlow are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

UNLABELED = "unlabeled"
SHOWN = 5  # example ids listed per kind of overlap


def _keys(serialized: bytes, split: str, feature: str):
    """(("id", record id), split) and (("content", digest of the input value), split)."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(serialized).features.feature
    record_id = example["id"].bytes_list.value[0].decode("utf-8", "replace")
    value = example[feature]
    content = b"".join(value.bytes_list.value) or np.asarray(
        value.float_list.value, dtype=np.float32).tobytes()
    yield ("id", record_id), (split, record_id)
    yield ("content", hashlib.sha256(content).hexdigest()), (split, record_id)


def _overlapping(item):
    """JSON lines for a key shared by an unlabelled record and a labelled one."""
    (kind, _), members = item
    members = sorted(set(members))
    unlabeled = [record_id for split, record_id in members if split == UNLABELED]
    labelled = [f"{split}:{record_id}" for split, record_id in members if split != UNLABELED]
    if unlabeled and labelled:
        for record_id in unlabeled:
            yield json.dumps({"kind": kind, "id": record_id, "labelled": labelled[:3]})


def FindOverlap(pipeline, examples_dir: str, splits: list[str], feature: str,
                output: str) -> None:
    """Add to `pipeline` the pass that writes <output>.jsonl (a path or URI): one line per unlabelled record
    that shares its id or its content with a labelled record."""
    import apache_beam as beam

    keyed = [pipeline | f"OverlapRead{split.title()}" >> beam.io.ReadFromTFRecord(
        f"{examples_dir}/*-{split}.tfrecord-*-of-*")
        | f"OverlapKeys{split.title()}" >> beam.FlatMap(_keys, split, feature)
        for split in splits]
    _ = (keyed | "OverlapFlatten" >> beam.Flatten()
         | "OverlapGroup" >> beam.GroupByKey()
         | "OverlapFind" >> beam.FlatMap(_overlapping)
         | "OverlapWrite" >> beam.io.WriteToText(str(output), file_name_suffix=".jsonl",
                                                 num_shards=1, shard_name_template=""))


def read_overlap(output: str) -> dict:
    """{"ids": n, "content": n, "examples": [...]} from FindOverlap's file (a path or URI)."""
    from edgepipe.contracts import storage

    lines = [json.loads(line) for line in
             storage.read_text(f"{output}.jsonl").splitlines() if line.strip()]
    lines.sort(key=lambda line: (line["kind"], line["id"]))
    return {"ids": sum(line["kind"] == "id" for line in lines),
            "content": sum(line["kind"] == "content" for line in lines),
            "examples": [line for kind in ("id", "content")
                         for line in [line for line in lines if line["kind"] == kind][:SHOWN]]}


def _shares(counts: dict, keys) -> np.ndarray:
    values = np.array([counts.get(key, 0) for key in keys], dtype=float)
    return values / values.sum() if values.sum() else values


def drift(train: dict, unlabeled: dict, feature: str) -> tuple[float, str]:
    """(L-infinity distance, what was compared) between train's and the unlabeled split's
    input distribution, from their statistics.json entries."""
    if feature == "image":
        shares = [np.asarray(split["histogram"]["counts"], dtype=float) for split in
                  (train, unlabeled)]
        shares = [counts / counts.sum() if counts.sum() else counts for counts in shares]
        return float(np.abs(shares[0] - shares[1]).max()), "pixel-value histogram"
    lengths = [split["length"]["distribution"] for split in (train, unlabeled)]
    keys = sorted(set(lengths[0]) | set(lengths[1]), key=int)
    what = "length distribution (steps)" if feature == "sequence" else \
        "length distribution (characters)"
    return float(np.abs(_shares(lengths[0], keys) - _shares(lengths[1], keys)).max()), what


def anomalies(summaries: dict, feature: str, overlap: dict | None,
              threshold: float) -> list[dict]:
    """Warnings about the unlabeled split: drift from train, overlap with labelled splits."""
    found = []

    def report(description):
        found.append({"split": UNLABELED, "feature": feature, "severity": "warning",
                      "description": description})

    unlabeled = summaries.get(UNLABELED)
    if unlabeled and unlabeled["num_examples"] and summaries["train"]["num_examples"]:
        distance, what = drift(summaries["train"]["features"][feature],
                               unlabeled["features"][feature], feature)
        unlabeled["drift"] = {"distance": distance, "compared": what, "threshold": threshold}
        if distance > threshold:
            report(f"the unlabeled data's {what} differs from train's by {distance:.3f} "
                   f"(L-infinity of shares), more than unlabeled_drift_threshold "
                   f"{threshold:g}: pseudo-labels of data unlike the training data are less "
                   "trustworthy")
    for kind, line_kind, what in (("ids", "id", "id"),
                                  ("content", "content", "content (the same stored input)")):
        if overlap and overlap[kind]:
            shown = [f"{line['id']} ~ {', '.join(line['labelled'])}"
                     for line in overlap["examples"] if line["kind"] == line_kind]
            report(f"{overlap[kind]} unlabeled record(s) share their {what} with labelled "
                   f"records, e.g. {'; '.join(shown[:3])}")
    return found
