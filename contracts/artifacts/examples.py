"""The Examples artifact (ingest): the TFDS dataset itself (shards, dataset_info.json and
features.json, read through components/shared/examples_io) and quarantine/records.jsonl, every
rejected raw record with its reason."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from edgepipe.contracts import storage
from edgepipe.contracts.artifacts.files import WRITERS, ArtifactFileError, PathLike, at

DATASET_NAME = "examples"  # the TFDS dataset's name: its shards are examples-<split>.tfrecord-*
DATASET_INFO = "dataset_info.json"
QUARANTINE = pathlib.PurePosixPath("quarantine", "records.jsonl")
WRITERS.update({str(QUARANTINE): "ingest", DATASET_INFO: "ingest"})


def read_quarantine(examples_dir: PathLike) -> list[dict[str, Any]]:
    """Every rejected raw record: {"split", "reason", "source", "detail", ...}."""
    path = at(examples_dir, QUARANTINE)
    if not storage.isfile(path):
        raise ArtifactFileError(f"{path} is missing; re-run the ingest stage.")
    records = []
    for number, line in enumerate(storage.read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record["split"], record["reason"]
        except (ValueError, KeyError, TypeError) as error:
            raise ArtifactFileError(f"{path}:{number}: expected a JSON object with split and "
                                    f"reason ({error!r}); re-run the ingest stage.") from None
        records.append(record)
    return records
