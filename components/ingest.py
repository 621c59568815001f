"""Ingest: raw data of any source -> a TFDS-format Examples dataset (train/validation/test).

The source (`[ingest] source = ...`) is one module of components/sources/; this stage is the
same Beam pipeline for all of them, a chain of composite PTransforms:

    ReadChunks    units of work (files, file pairs) -> chunks of raw records, reshuffled so
                  that the workers share them
    RouteRecords  chunk -> records; each is checked (a rejected one becomes a quarantine
                  line with its reason), assigned train/validation/test by a hash of its id,
                  and encoded as a tf.train.Example by the TFDS FeaturesDict; one output per
                  split, plus "quarantine" and "read" (records read per chunk)

Every read record is written or quarantined (quarantine/records.jsonl) and counted: the
manifest accounts for them per split and per reason, and the stage fails if records went
missing, if too many were rejected, or if a source file changed while it was read.

TensorFlow, TFDS and Beam are imported inside functions so a cached pipeline does not pay
for importing them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import pathlib
import struct
from typing import Any

import numpy as np

from components.beam_pipeline import create_pipeline
from components.sources.config import Config, with_fallback
from components.sources import SOURCES, common
from components.sources.idx import read_idx, read_idx_available  # noqa: F401  (re-exported)

NAME = "ingest"
VERSION = 2
INPUTS: dict[str, str] = {}
OUTPUTS = {"examples": "Examples"}
CODE = ("components.sources",)

DATASET_NAME = "examples"
SPLITS = ("train", "validation", "test")
SPLITS_OF_ORIGIN = {"train": ("train", "validation"), "test": ("test",), "all": SPLITS}

__all__ = ["Config", "run", "fingerprint"]


def fingerprint(config: Config) -> str:
    """sha256 of the content of every raw file: changed raw data re-runs ingest."""
    config = with_fallback(config)
    return common.fingerprint(SOURCES[config.source].files(config))


# ---------------------------------------------------------------- record-level logic


def validation_bucket(record_id: str) -> float:
    """A number in [0, 1) fixed by the id alone, so a record never changes split."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:8], "big") / 2.0**64


def assign_split(record_id: str, origin: str, validation_fraction: float,
                 test_fraction: float = 0.0) -> str:
    """test records stay in test; train records go to validation if their bucket is low; a
    source without its own test split ("all") gives the lowest buckets to test."""
    if origin == "test":
        return "test"
    bucket = validation_bucket(record_id)
    if origin == "all":
        if bucket < test_fraction:
            return "test"
        bucket = (bucket - test_fraction) / (1.0 - test_fraction)
    return "validation" if bucket < validation_fraction else "train"


def rejection_reason(record: dict, info: dict) -> tuple[str, str] | None:
    """(reason, detail) if a parsed record cannot become an example, else None."""
    num_classes = len(info["class_names"])
    if record.get("label") is None:
        return "missing_label", "the record has no class label"
    if not 0 <= record["label"] < num_classes:
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
    else:
        value = tfds.features.Text()
    return tfds.features.FeaturesDict({
        "id": tfds.features.Text(),
        info["feature"]: value,
        "label": tfds.features.ClassLabel(names=list(info["class_names"])),
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
    split = assign_split(element["id"], element["origin"], validation_fraction, test_fraction)
    name = info["feature"]
    return split, (features or features_of(info)).serialize_example(
        {"id": element["id"], name: element[name], "label": element["label"]})


def _read_unit(unit, kind: str, config: Config, info: dict):
    return SOURCES[kind].read_unit(unit, config, info)


def _route_chunk(chunk, kind: str, info: dict, validation_fraction: float,
                 test_fraction: float):
    import apache_beam as beam

    counts: dict[str, int] = {}
    features = features_of(info)
    for element in SOURCES[kind].expand(chunk, info):
        counts[element["origin"]] = counts.get(element["origin"], 0) + 1
        yield beam.pvalue.TaggedOutput(*route(element, info, validation_fraction,
                                              test_fraction, features))
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
    lines of rejected records) and "read" ((origin, count) per chunk)."""
    import apache_beam as beam

    return beam.FlatMap(_route_chunk, config.source, info, config.validation_fraction,
                        config.test_fraction).with_outputs("quarantine", "read", *SPLITS)


# ---------------------------------------------------------------- the stage


def count_records(path: pathlib.Path) -> int:
    """Records in an uncompressed TFRecord file, from the length fields alone (no parsing):
    each record is a uint64 length, a uint32 CRC, the data and a uint32 CRC."""
    count, size = 0, path.stat().st_size
    with path.open("rb") as stream:
        while stream.tell() < size:
            (length,) = struct.unpack("<Q", stream.read(8))
            stream.seek(length + 8, 1)
            count += 1
    return count


def _split_infos(folder: pathlib.Path) -> list:
    """SplitInfo per split from the written shards."""
    import tensorflow_datasets as tfds

    infos = []
    for split in SPLITS:
        shards = sorted(folder.glob(f"{DATASET_NAME}-{split}.tfrecord-*-of-*"))
        template = tfds.core.ShardedFileTemplate(
            data_dir=folder, dataset_name=DATASET_NAME, split=split, filetype_suffix="tfrecord"
        )
        infos.append(tfds.core.SplitInfo(
            name=split, shard_lengths=[count_records(shard) for shard in shards],
            num_bytes=sum(shard.stat().st_size for shard in shards), filename_template=template,
        ))
    return infos


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    import apache_beam as beam
    import tensorflow_datasets as tfds

    config = with_fallback(config, context.log)
    source = SOURCES[config.source]
    files = source.files(config)
    before = common.snapshot(files)
    info = source.describe(config)
    folder = pathlib.Path(outputs["examples"])
    scratch = pathlib.Path(context.scratch_dir)
    context.log.info("ingest: source %s, %d file(s) (%s), feature %s", config.source,
                     len(before), {o: len(p) for o, p in files.items()}, info["feature"])
    (folder / "quarantine").mkdir()

    # One chain for every origin, with no Flatten of the examples: a Flatten would make the
    # runner materialise every record between steps.
    with create_pipeline(context.runtime) as pipeline:
        routed = (pipeline | "Read" >> ReadChunks(config, info)
                  | "Route" >> RouteRecords(config, info))
        for split in SPLITS:
            _ = routed[split] | f"Write{split.title()}" >> beam.io.WriteToTFRecord(
                str(folder / f"{DATASET_NAME}-{split}.tfrecord"),
                num_shards=config.num_shards, shard_name_template="-SSSSS-of-NNNNN")
        _ = (routed.read
             | "CountRead" >> beam.CombinePerKey(sum)
             | "ReadJson" >> beam.Map(json.dumps)
             | "WriteRead" >> beam.io.WriteToText(str(scratch / "read"), file_name_suffix=".jsonl",
                                                  num_shards=1, shard_name_template=""))
        _ = routed.quarantine | "WriteQuarantine" >> beam.io.WriteToText(
            str(folder / "quarantine" / "records"), file_name_suffix=".jsonl",
            num_shards=1, shard_name_template="")

    common.check_unchanged(before)
    split_infos = _split_infos(folder)
    tfds.folder_dataset.write_metadata(
        data_dir=folder, features=tfds_features(info), split_infos=split_infos,
        filename_template=None, check_data=True,
        description=f"Examples written by the edgepipe ingest stage from a {config.source} "
                    "source.",
    )
    read = dict.fromkeys(files, 0)
    read.update(dict(json.loads(line)
                     for line in (scratch / "read.jsonl").read_text().splitlines()))
    counts = {info_.name: info_.num_examples for info_ in split_infos}
    rejected = [json.loads(line) for line in
                (folder / "quarantine" / "records.jsonl").read_text().splitlines()]
    accounting = account(read, counts, rejected)
    check_quarantine_fraction(read, rejected, config.max_quarantine_fraction)
    context.log.info("ingest: read %s, wrote %s, quarantined %d", read, counts, len(rejected))
    shape = {"image": info.get("shape"), "sequence": [None, info.get("channels")],
             "text": []}[info["feature"]]
    return {
        "source": config.source,
        "input_feature": info["feature"],
        "splits": counts,
        "read": read,
        "quarantined": {
            "total": len(rejected),
            "by_reason": dict(collections.Counter(r["reason"] for r in rejected)),
        },
        "accounting": accounting,
        "class_names": list(info["class_names"]),
        "input_shape": shape,
    }


def account(read: dict, counts: dict, rejected: list) -> dict:
    """Per origin: read = written + quarantined, with the quarantine per reason; else fail."""
    accounting = {}
    for origin, total in read.items():
        mine = [record for record in rejected if record["split"] == origin]
        written = sum(counts[split] for split in SPLITS_OF_ORIGIN[origin])
        accounting[origin] = {
            "read": total, "written": written, "quarantined": len(mine),
            "by_reason": dict(collections.Counter(record["reason"] for record in mine)),
        }
        if written + len(mine) != total:
            raise RuntimeError(
                f"ingest lost records of the {origin} data: read {total}, wrote {written}, "
                f"quarantined {len(mine)}.")
    if not sum(read.values()):
        raise ValueError("the source holds no records: every file was empty; check the "
                         "[ingest] paths.")
    return accounting


def check_quarantine_fraction(read: dict, rejected: list, max_fraction: float) -> None:
    """Too many rejections is an error naming the top reasons and example locations."""
    total = sum(read.values())
    if total and len(rejected) / total > max_fraction:
        reasons = collections.Counter(record["reason"] for record in rejected).most_common(3)
        examples = "; ".join(
            f"{record['source']}: {record['detail']}" for record in rejected[:5])
        raise ValueError(
            f"{len(rejected)} of {total} records ({len(rejected) / total:.1%}) were rejected, "
            f"more than max_quarantine_fraction={max_fraction}. Top reasons: "
            + ", ".join(f"{reason} ({count})" for reason, count in reasons)
            + f". Examples: {examples}. Fix the raw files or the class_names, or raise "
            "max_quarantine_fraction; every rejected record is listed in quarantine/records.jsonl."
        )
