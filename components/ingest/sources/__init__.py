"""Raw-data sources of the ingest stage: one module per format, one small contract.

Each source module provides

    KIND: str                      the `source = ...` value in the [ingest] config
    FIELDS: tuple[str, ...]        the [ingest] keys it uses besides the common ones
    REQUIRED: tuple[str, ...]      the keys among FIELDS that must be set
    def files(config) -> dict[origin, list[str]]   every raw file it reads, per origin
    def describe(config) -> dict   {"feature": "image"|"sequence"|"text"|"audio", "class_names":
                                    [...], "shape": [H, W, C] (image) | "channels": C
                                    (sequence) | "shape": [samples], "sample_rate" (audio)}
    def read_units(config, origin) -> list            units of work (files, file pairs)
    def read_unit(unit, config, info) -> iterator     chunks, handed between workers
    def expand(chunk, info) -> iterator               records or rejections (see below)

An origin is "train" or "test" (the source's own split) or "all" (no test data given: the
test split is cut by hash). A record is {"id", "source", "origin", "label", <feature>} and,
when the source fixes it (audio_dir keeps a speaker in one split), "split"; a
rejection is {"id", "source", "origin", "reason", "detail"}: a record that could not even be
parsed. The ingest stage turns both into examples or quarantine lines and counts them.

Paths may be local or URIs that Beam's FileSystems understand (gs://, s3://).
"""

from __future__ import annotations

from edgepipe.components.ingest.sources import (audio_dir, box_csv, coco, csv, idx, image_dir,
                                                text_corpus, text_dir, tfds, tfrecord, ts, voc)

SOURCES = {module.KIND: module for module in (idx, ts, image_dir, csv, text_dir, tfrecord, tfds,
                                              voc, coco, box_csv, text_corpus, audio_dir)}
