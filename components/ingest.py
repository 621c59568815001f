"""Ingest: raw IDX files -> a TFDS-format Examples dataset (train/validation/test), with Beam.

The pipeline is a chain of composite PTransforms, each testable on its own:

    ReadIdx        one (images, labels) file pair -> records {id, source, origin, image, label}
    Quarantine     records that fail a check -> tagged output, with the reason
    SplitByHash    train-file records -> train or validation by a hash of their id
    EncodeTfdsExample  record -> serialized tf.train.Example (the TFDS FeaturesDict encodes)

Each file is read once, as a whole, and cut into chunks that are reshuffled so that workers
share the PNG encoding; records are only materialised after the reshuffle. Rejected records
are written to quarantine/records.jsonl and counted, never dropped silently.

TensorFlow, TFDS and Beam are imported inside functions so a cached pipeline does not pay
for importing them.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import pathlib
import struct
from typing import Any, Literal

import numpy as np
import pydantic

from components.beam_pipeline import create_pipeline
from pipeline.stage import ExistingPath, StageConfig

NAME = "ingest"
VERSION = 1
INPUTS: dict[str, str] = {}
OUTPUTS = {"examples": "Examples"}

DATASET_NAME = "examples"
SPLITS = ("train", "validation", "test")
CHUNK_RECORDS = 2000  # records per chunk handed between workers
IDX_UBYTE = 0x08


class Config(StageConfig):
    source: Literal["idx"] = pydantic.Field("idx", description="Raw format: IDX (MNIST-style).")
    train_images: ExistingPath = pydantic.Field(description="IDX images file (gz or plain).")
    train_labels: ExistingPath = pydantic.Field(description="IDX labels for train_images.")
    test_images: ExistingPath = pydantic.Field(description="IDX images of the test split.")
    test_labels: ExistingPath = pydantic.Field(description="IDX labels for test_images.")
    class_names: tuple[str, ...] = pydantic.Field(
        min_length=1, description="Class names in label-index order."
    )
    validation_fraction: float = pydantic.Field(
        0.1, ge=0.0, lt=1.0, description="Share of training records moved to validation."
    )
    num_shards: int = pydantic.Field(1, ge=1, description="TFRecord shards per split.")
    max_quarantine_fraction: float = pydantic.Field(
        0.01, ge=0.0, le=1.0, description="Fail if more of the read records are rejected."
    )


# ---------------------------------------------------------------- IDX files


def _open_raw(path: str):
    if "://" in path:  # gs://, s3://: through Beam's filesystems
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.open(path, compression_type="uncompressed")
    return open(path, "rb")


def _open_idx(path: str):
    """A binary stream of the IDX content, gunzipped if the file starts with the gzip magic."""
    raw = _open_raw(path)
    head = raw.read(2)
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw


def read_idx_header(path: str, kind: str, ndim: int) -> tuple[tuple[int, ...], int]:
    """(dims, header size) of an IDX file of unsigned bytes with `ndim` dimensions."""
    expected = (IDX_UBYTE << 8) | ndim
    try:
        with _open_idx(path) as stream:
            head = stream.read(4 + 4 * ndim)
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: cannot read the IDX {kind} file ({error}).") from error
    magic = struct.unpack(">I", head[:4])[0] if len(head) >= 4 else None
    if magic != expected or len(head) < 4 + 4 * ndim:
        found = "a file too short for a header" if magic is None else f"0x{magic:08x}"
        raise ValueError(
            f"{path}: not an IDX {kind} file: magic number is {found}, expected 0x{expected:08x} "
            f"(unsigned bytes, {ndim} dimension(s)). Point the config at the "
            f"{kind} file (e.g. train-{kind}-idx{ndim}-ubyte.gz)."
        )
    return struct.unpack(f">{ndim}I", head[4:]), 4 + 4 * ndim


def read_idx(path: str, kind: str, ndim: int) -> np.ndarray:
    """The whole IDX file as a uint8 array of its declared dims; errors name the file."""
    dims, header_size = read_idx_header(path, kind, ndim)
    try:
        with _open_idx(path) as stream:
            data = stream.read()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise ValueError(
            f"{path}: the file is truncated or corrupt ({error}); fetch it again."
        ) from error
    body = memoryview(data)[header_size:]
    expected = int(np.prod(dims))
    if len(body) != expected:
        raise ValueError(
            f"{path}: the header declares {dims[0]} records of shape {list(dims[1:])} "
            f"({expected} bytes) but the body holds {len(body)} bytes: the file is "
            "truncated or was cut without rewriting its header."
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def file_pairs(config: Config) -> dict[str, tuple[str, str]]:
    return {
        "train": (config.train_images, config.train_labels),
        "test": (config.test_images, config.test_labels),
    }


def check_headers(config: Config) -> tuple[dict[str, int], tuple[int, int, int]]:
    """Validate every header before the pipeline starts: (records per file pair, image shape)."""
    counts, shapes = {}, {}
    for origin, (images_path, labels_path) in file_pairs(config).items():
        image_dims, _ = read_idx_header(images_path, "images", 3)
        label_dims, _ = read_idx_header(labels_path, "labels", 1)
        if image_dims[0] != label_dims[0]:
            raise ValueError(
                f"{images_path} holds {image_dims[0]} images but {labels_path} holds "
                f"{label_dims[0]} labels: each image needs exactly one label."
            )
        counts[origin] = image_dims[0]
        shapes[origin] = (image_dims[1], image_dims[2], 1)
    if shapes["train"] != shapes["test"]:
        raise ValueError(f"train images are {shapes['train']} but test images {shapes['test']}.")
    return counts, shapes["train"]


def fingerprint(config: Config) -> str:
    """sha256 of the content of the four raw files: changed raw data re-runs ingest."""
    digest = hashlib.sha256()
    for origin, pair in file_pairs(config).items():
        for role, path in zip(("images", "labels"), pair):
            digest.update(f"{origin}_{role}\0".encode())
            with _open_raw(path) as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- record-level logic


def validation_bucket(record_id: str) -> float:
    """A number in [0, 1) fixed by the id alone, so a record never changes split."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:8], "big") / 2.0**64


def assign_split(record_id: str, origin: str, validation_fraction: float) -> str:
    """test records stay in test; a train record goes to validation if its bucket is low."""
    if origin == "test":
        return "test"
    return "validation" if validation_bucket(record_id) < validation_fraction else "train"


def rejection_reason(record: dict, num_classes: int) -> tuple[str, str] | None:
    """(reason, detail) if the record cannot become an example, else None."""
    if not 0 <= record["label"] < num_classes:
        return "label_out_of_range", (
            f"label {record['label']} is not in 0..{num_classes - 1} "
            f"(class_names has {num_classes} entries)"
        )
    return None


# ---------------------------------------------------------------- Beam transforms
# Composite transforms are built by factories so that Beam is imported only when used; the
# per-element functions are module-level so every runner can pickle them by reference.


def _read_chunks(pair: tuple[str, str, str]):
    """Read one (origin, images, labels) file pair once and cut it into record chunks."""
    origin, images_path, labels_path = pair
    images = read_idx(images_path, "images", 3)
    labels = read_idx(labels_path, "labels", 1)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels."
        )
    for start in range(0, len(images), CHUNK_RECORDS):
        stop = start + CHUNK_RECORDS
        yield origin, images_path, labels_path, start, images[start:stop], labels[start:stop]


def _chunk_records(chunk):
    origin, images_path, labels_path, start, images, labels = chunk
    images_name = pathlib.PurePosixPath(images_path).name
    for offset, (image, label) in enumerate(zip(images[..., np.newaxis], labels.tolist())):
        index = start + offset
        yield {
            "id": f"{images_name}:{index}",
            "source": f"{labels_path}:{index}",
            "origin": origin,
            "image": image,
            "label": label,
        }


def ReadIdx(origin: str, images_path: str, labels_path: str):
    """PBegin -> records {id, source, origin, image [H,W,1] uint8, label int}."""
    import apache_beam as beam

    @beam.ptransform_fn
    def read_idx_files(pbegin):
        return (
            pbegin
            | "Files" >> beam.Create([(origin, images_path, labels_path)])
            | "ReadChunks" >> beam.FlatMap(_read_chunks)
            | "Spread" >> beam.Reshuffle()
            | "Records" >> beam.FlatMap(_chunk_records)
        )

    return read_idx_files()


def _check_record(record: dict, num_classes: int):
    import apache_beam as beam

    rejected = rejection_reason(record, num_classes)
    if rejected is None:
        yield record
    else:
        reason, detail = rejected
        yield beam.pvalue.TaggedOutput("quarantine", json.dumps({
            "source": record["source"], "id": record["id"], "split": record["origin"],
            "reason": reason, "detail": detail,
        }))


def Quarantine(num_classes: int):
    """records -> (valid records, JSON lines of rejected records) as outputs valid/quarantine."""
    import apache_beam as beam

    return beam.FlatMap(_check_record, num_classes).with_outputs("quarantine", main="valid")


def _split_index(record: dict, num_partitions: int, validation_fraction: float) -> int:
    return SPLITS.index(assign_split(record["id"], record["origin"], validation_fraction))


def SplitByHash(validation_fraction: float):
    """records -> {split name: records}, deterministic in each record's id."""
    import apache_beam as beam

    @beam.ptransform_fn
    def split_by_hash(records):
        parts = records | beam.Partition(_split_index, len(SPLITS), validation_fraction)
        return dict(zip(SPLITS, parts))

    return split_by_hash()


def tfds_features(class_names, shape):
    """The Examples feature spec (the contract every stage reads)."""
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict({
        "id": tfds.features.Text(),
        "image": tfds.features.Image(shape=tuple(shape), dtype=np.uint8, encoding_format="png"),
        "label": tfds.features.ClassLabel(names=list(class_names)),
    })


_FEATURES_CACHE: dict = {}


def _serialize(record: dict, class_names: tuple, shape: tuple) -> bytes:
    key = (class_names, shape)
    if key not in _FEATURES_CACHE:  # once per worker process
        _FEATURES_CACHE[key] = tfds_features(class_names, shape)
    features = _FEATURES_CACHE[key]
    return features.serialize_example(
        {"id": record["id"], "image": record["image"], "label": record["label"]}
    )


def EncodeTfdsExample(class_names, shape):
    """records -> serialized tf.train.Example bytes (PNG image, Text id, ClassLabel label)."""
    import apache_beam as beam

    return beam.Map(_serialize, tuple(class_names), tuple(shape))


# ---------------------------------------------------------------- the stage


def _split_infos(folder: pathlib.Path) -> list:
    """SplitInfo per split from the written shards (record counts read back by tf.data)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    infos = []
    for split in SPLITS:
        shards = sorted(folder.glob(f"{DATASET_NAME}-{split}.tfrecord-*-of-*"))
        lengths = [
            int(tf.data.TFRecordDataset(str(shard)).reduce(np.int64(0), lambda n, _: n + 1))
            for shard in shards
        ]
        template = tfds.core.ShardedFileTemplate(
            data_dir=folder, dataset_name=DATASET_NAME, split=split, filetype_suffix="tfrecord"
        )
        infos.append(tfds.core.SplitInfo(
            name=split, shard_lengths=lengths,
            num_bytes=sum(shard.stat().st_size for shard in shards), filename_template=template,
        ))
    return infos


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    import apache_beam as beam
    import tensorflow_datasets as tfds

    folder = pathlib.Path(outputs["examples"])
    read, shape = check_headers(config)
    context.log.info("ingest: reading %s records (%s), image shape %s", sum(read.values()),
                     read, shape)
    (folder / "quarantine").mkdir()

    with create_pipeline(context.runtime) as pipeline:
        records = [
            pipeline | f"Read{origin.title()}" >> ReadIdx(origin, *pair)
            for origin, pair in file_pairs(config).items()
        ]
        checked = records | "Merge" >> beam.Flatten() | "Check" >> Quarantine(
            len(config.class_names))
        _ = checked.quarantine | "WriteQuarantine" >> beam.io.WriteToText(
            str(folder / "quarantine" / "records"), file_name_suffix=".jsonl",
            num_shards=1, shard_name_template="")
        splits = checked.valid | "Split" >> SplitByHash(config.validation_fraction)
        for split, split_records in splits.items():
            _ = (
                split_records
                | f"Encode{split.title()}" >> EncodeTfdsExample(config.class_names, shape)
                | f"Write{split.title()}" >> beam.io.WriteToTFRecord(
                    str(folder / f"{DATASET_NAME}-{split}.tfrecord"),
                    num_shards=config.num_shards, shard_name_template="-SSSSS-of-NNNNN")
            )

    split_infos = _split_infos(folder)
    tfds.folder_dataset.write_metadata(
        data_dir=folder, features=tfds_features(config.class_names, shape),
        split_infos=split_infos, filename_template=None, check_data=True,
        description="Examples written by the edgepipe ingest stage from IDX files.",
    )
    counts = {info.name: info.num_examples for info in split_infos}
    rejected = [json.loads(line) for line in
                (folder / "quarantine" / "records.jsonl").read_text().splitlines()]
    _check_accounting(read, counts, rejected, config.max_quarantine_fraction)
    by_reason = collections.Counter(record["reason"] for record in rejected)
    context.log.info("ingest: wrote %s; quarantined %d", counts, len(rejected))
    return {
        "splits": counts,
        "read": read,
        "quarantined": {"total": len(rejected), "by_reason": dict(by_reason)},
        "class_names": list(config.class_names),
        "input_shape": list(shape),
    }


def _check_accounting(read: dict, counts: dict, rejected: list, max_fraction: float) -> None:
    """Every read record is either written or quarantined; too many rejections is an error."""
    total = sum(read.values())
    if sum(counts.values()) + len(rejected) != total:
        raise RuntimeError(
            f"ingest lost records: read {total}, wrote {sum(counts.values())}, "
            f"quarantined {len(rejected)}."
        )
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
