"""Ingest: raw data of any source -> a TFDS-format Examples dataset (train/validation/test).

The source (`[ingest] source = ...`) is one module of sources/; this stage is the same Beam
pipeline for all of them, a chain of composite PTransforms (records.py):

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
import json
import os
import logging
import struct
import tempfile
from typing import Any

from edgepipe.components.ingest import forecast
from edgepipe.components.ingest.records import (SPLITS, UNLABELED, ReadChunks, RouteRecords,
                                                splits_of, tfds_features)
from edgepipe.components.ingest.sources import SOURCES, common
from edgepipe.components.ingest.sources.config import Config, with_fallback
from edgepipe.components.shared.beam_pipeline import create_pipeline
from edgepipe.contracts import artifacts, storage, unlabeled_artifacts
from edgepipe.pipeline.spec import StageSpec

DATASET_NAME = artifacts.DATASET_NAME
# Tasks whose ingest is not one example per raw record (edgepipe.contracts.tasks).
TASK_RUNS = {"forecasting": forecast.run}
SPLITS_OF_ORIGIN = {"train": ("train", "validation"), "test": ("test",), "all": SPLITS,
                    UNLABELED: (UNLABELED,)}


def fingerprint(config: Config, inputs=None) -> str:
    """sha256 of the content of every raw file: changed raw data re-runs ingest."""
    config = with_fallback(config)
    return common.fingerprint(SOURCES[config.source].files(config))


# ---------------------------------------------------------------- the stage


def count_records(path) -> int:
    """Records in an uncompressed TFRecord file (a path or URI), from the length fields alone
    (no parsing): each record is a uint64 length, a uint32 CRC, the data and a uint32 CRC."""
    count, size = 0, storage.size(path)
    with storage.open_binary(path) as stream:
        while stream.tell() < size:
            (length,) = struct.unpack("<Q", stream.read(8))
            stream.seek(length + 8, 1)
            count += 1
    return count


def first_record(path) -> bytes | None:
    """The first record's data of an uncompressed TFRecord file (a path or URI), or None."""
    with storage.open_binary(path) as stream:
        header = stream.read(12)
        if len(header) < 12:
            return None
        (length,) = struct.unpack("<Q", header[:8])
        return stream.read(length)


def check_readable(features, shards: dict[str, list[str]]) -> None:
    """Decode the first written example with the dataset's own feature specs, as TFDS's
    `check_data` does but with its NumPy parser: the stage never imports TensorFlow (whose
    import alone costs about 600 MB), so ingest's memory follows the data."""
    for path in (path for paths in shards.values() for path in paths):
        record = first_record(path)
        if record is not None:
            absl_logger = logging.getLogger("absl")  # TFDS warns that OpenCV is not installed
            level = absl_logger.level
            absl_logger.setLevel(logging.ERROR)
            try:
                decoded = features.deserialize_example_np(record)
                # the NumPy parser gives None for a feature the record lacks
                missing = sorted(key for key, value in decoded.items() if value is None)
                if missing:
                    raise ValueError(f"no value for {', '.join(missing)}")
            except Exception as error:  # a mismatch between features and records is a bug
                raise RuntimeError(f"{path}: the first written example does not decode with "
                                   f"the dataset's features ({error}); this is an edgepipe "
                                   "bug, please report it") from error
            finally:
                absl_logger.setLevel(level)
            return


def shard_files(folder, splits: tuple[str, ...] = SPLITS) -> dict[str, list[str]]:
    """{split: its TFRecord shards, sorted} of an Examples folder (a path or URI)."""
    return {split: storage.glob(storage.join(folder, f"{DATASET_NAME}-{split}.tfrecord-*-of-*"))
            for split in splits}


def _split_infos(shards: dict[str, list[str]], lengths: dict[str, list[int]], data_dir) -> list:
    """SplitInfo per split from the written shards (named as in local folder `data_dir`)."""
    import tensorflow_datasets as tfds

    return [tfds.core.SplitInfo(
        name=split, shard_lengths=lengths[split],
        num_bytes=sum(storage.size(shard) for shard in shards[split]),
        filename_template=tfds.core.ShardedFileTemplate(
            data_dir=data_dir, dataset_name=DATASET_NAME, split=split,
            filetype_suffix="tfrecord"),
    ) for split in shards]


def write_metadata(folder, features, shards: dict[str, list[str]],
                   lengths: dict[str, list[int]], description: str) -> None:
    """dataset_info.json, features.json and the label names, so TFDS loads the folder. A URI
    folder (an object store, which TensorFlow's own file system cannot be trusted to reach)
    gets them written in a local folder beside zero-byte stand-ins of its shards (TFDS reads
    only their names), then uploaded."""
    import tensorflow_datasets as tfds

    remote = storage.is_remote(folder)
    stand_ins = [path.rsplit("/", 1)[-1] for paths in shards.values() for path in paths]
    with tempfile.TemporaryDirectory(prefix="edgepipe-metadata-") as local:
        data_dir = local if remote else folder
        for name in stand_ins if remote else ():
            open(os.path.join(local, name), "wb").close()
        split_infos = _split_infos(shards, lengths, data_dir)
        tfds.folder_dataset.write_metadata(
            data_dir=data_dir, features=features, split_infos=split_infos,
            filename_template=None, description=description,
            check_data=False)  # TFDS's check imports TensorFlow: check_readable instead
        if remote:
            storage.upload_tree(local, folder, skip=tuple(stand_ins))


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    config = with_fallback(config, context.log)
    if config.task in TASK_RUNS:  # series are grouped and cut into windows instead
        return TASK_RUNS[config.task](
            config, context, outputs["examples"], context.scratch_dir, write_metadata,
            shard_files, count_records, check_quarantine_fraction)
    source = SOURCES[config.source]
    files = source.files(config)
    before = common.snapshot(files)
    info = source.describe(config)
    check_class_count(info["class_names"], config.max_classes, config.source)
    folder, scratch = outputs["examples"], context.scratch_dir  # local paths or URIs
    context.log.info("ingest: source %s, %d file(s) (%s), feature %s", config.source,
                     len(before), {o: len(p) for o, p in files.items()}, info["feature"])
    write_records(config, info, folder, scratch, context.runtime)
    common.check_unchanged(before)
    shards = shard_files(folder, splits_of(config))
    read = dict.fromkeys(files, 0)
    read.update(dict(json.loads(line) for line in
                     storage.read_text(storage.join(scratch, "read.jsonl")).splitlines()))
    lengths = {split: [count_records(shard) for shard in paths] for split, paths in shards.items()}
    counts = {split: sum(split_lengths) for split, split_lengths in lengths.items()}
    rejected = artifacts.read_quarantine(folder)
    # The accounting and the rejection share are checked before TFDS reads the dataset: an
    # unreadable file then fails with its own name and reason, not as an empty split.
    accounting = account(read, counts, rejected)
    check_quarantine_fraction(read, rejected, config.max_quarantine_fraction)
    features = tfds_features(info)
    check_readable(features, shards)
    write_metadata(folder, features, shards, lengths,
                   f"Examples written by the edgepipe ingest stage from a {config.source} "
                   "source.")
    context.log.info("ingest: read %s, wrote %s, quarantined %d", read, counts, len(rejected))
    shape = {"image": info.get("shape"), "sequence": [None, info.get("channels")],
             "text": [], "audio": info.get("shape")}[info["feature"]]
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
        **({"target_names": list(info["target_names"])} if info.get("target_names") else {}),
        **({"units": info["units"], "documents": info["documents"]} if "units" in info else {}),
        **({"sample_rate": info["sample_rate"]} if "sample_rate" in info else {}),
        "input_shape": shape,
        # A table's column names, one per channel: statistics names constant columns by them.
        **({"feature_names": list(info["feature_columns"])}
           if info.get("columns_as") == "channels" else {}),
    }


def write_records(config: Config, info: dict, folder, scratch, runtime) -> None:
    """One Beam pipeline: TFRecord shards per split, quarantine/records.jsonl, and the count
    of records read per origin in <scratch>/read.jsonl."""
    import apache_beam as beam

    storage.makedirs(storage.join(folder, "quarantine"))
    # One chain for every origin, with no Flatten of the examples: a Flatten would make the
    # runner materialise every record between steps.
    with create_pipeline(runtime) as pipeline:
        routed = (pipeline | "Read" >> ReadChunks(config, info)
                  | "Route" >> RouteRecords(config, info))
        for split in splits_of(config):
            _ = routed[split] | f"Write{split.title()}" >> beam.io.WriteToTFRecord(
                storage.join(folder, f"{DATASET_NAME}-{split}.tfrecord"),
                num_shards=config.num_shards, shard_name_template="-SSSSS-of-NNNNN")
        if config.unlabeled:  # id -> raw location, for the labelling queue
            _ = routed.sources | "WriteSources" >> beam.io.WriteToText(
                unlabeled_artifacts.unlabeled_sources_path(folder).removesuffix(".jsonl"),
                file_name_suffix=".jsonl", num_shards=1, shard_name_template="")
        _ = (routed.read
             | "CountRead" >> beam.CombinePerKey(sum)
             | "ReadJson" >> beam.Map(json.dumps)
             | "WriteRead" >> beam.io.WriteToText(storage.join(scratch, "read"),
                                                  file_name_suffix=".jsonl",
                                                  num_shards=1, shard_name_template=""))
        _ = routed.quarantine | "WriteQuarantine" >> beam.io.WriteToText(
            storage.join(folder, "quarantine", "records"), file_name_suffix=".jsonl",
            num_shards=1, shard_name_template="")


def check_class_count(class_names: list[str], most: int, source: str) -> None:
    """A class count past [ingest] max_classes is refused before anything is read: one class
    per record (a label column of ids) costs every later stage for nothing."""
    if len(class_names) > most:
        raise ValueError(
            f"the {source} data has {len(class_names):,} classes ({', '.join(class_names[:5])}, "
            f"...), more than [ingest] max_classes = {most}; check the label column or class "
            "folders, or raise max_classes.")


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


SPEC = StageSpec(
    name="ingest", version=2, config=Config, run=run, fingerprint=fingerprint,
    outputs={"examples": "Examples"},
    # Beam writes the shards and every file goes through edgepipe.contracts.storage: on a
    # gs:// root the output folder is a URI and the workers write straight into the bucket.
    remote_io=True,
)
