"""The [ingest] config: common keys plus the keys of the chosen source, checked together.

The table stays flat (`source = "ts"`, `train = ...`, `test = ...`), as users write it; a
key that the chosen source does not use, or a required key it lacks, is an error naming the
keys that source takes. Paths are relative to the config file; URIs (gs://, s3://) pass.
"""

from __future__ import annotations

import glob
import logging
import os
import pathlib
from typing import Literal

import pydantic

from edgepipe.contracts import tasks
from edgepipe.pipeline.sections import ForecastSection
from edgepipe.components.ingest.sources import task_fit
from edgepipe.pipeline.stage import StageConfig, check_file_or_folder

# What each source's path keys must name on disk: a file, a folder, or a glob of files.
PATH_KINDS = {"idx": "file", "ts": "file", "csv": "file", "image_dir": "folder",
              "text_dir": "folder", "tfrecord": "glob", "voc": "folder", "text_corpus": "glob",
              "audio_dir": "folder"}
COMMON = ("source", "fallback", "data_dir", "class_names", "validation_fraction", "test_fraction",
          "num_shards", "max_quarantine_fraction", "max_classes", "task", "forecast")
PATH_FIELDS = ("train_images", "train_labels", "test_images", "test_labels", "train", "test",
               "unlabeled")


class Config(StageConfig):
    source: Literal["idx", "ts", "image_dir", "csv", "text_dir", "tfrecord", "tfds", "voc", "coco",
                    "box_csv", "text_corpus", "audio_dir"] = (
        pydantic.Field("idx", description="Raw format; see components/ingest/sources/<source>.py."))
    fallback: str | None = pydantic.Field(
        None, pattern=r"^tfds:[\w.:/-]+$",
        description="'tfds:<name>': read this TFDS dataset instead when the source's files "
        "are missing (e.g. tfds:fashion_mnist).")
    # idx
    train_images: str | None = pydantic.Field(
        None, description="idx: IDX images (gz or not). coco, box_csv: the folder of the train "
        "images (default: the annotations file's folder).")
    train_labels: str | None = pydantic.Field(None, description="idx: IDX labels of train.")
    test_images: str | None = pydantic.Field(
        None, description="idx: IDX images of test. coco, box_csv: the folder of the test "
        "images (default: the annotations file's folder).")
    test_labels: str | None = pydantic.Field(None, description="idx: IDX labels of test.")
    # ts, image_dir, csv, text_dir, tfrecord
    train: str | None = pydantic.Field(
        None, description="Training data: a .ts/.csv file, a folder of class sub-folders "
        "(image_dir, text_dir) or a file glob (tfrecord).")
    test: str | None = pydantic.Field(
        None, description="Test data, same kind as train; without it test_fraction of the "
        "records are cut from train by hash.")
    unlabeled: str | None = pydantic.Field(
        None, description="Unlabelled data, written to the `unlabeled` split (label -1): "
        "idx: an IDX images file without labels; image_dir/text_dir: a folder of files "
        "without class sub-folders; ts: a .ts file (@classLabel false, or labels ignored); "
        "csv: a CSV with the feature columns (a label column is ignored); tfrecord: a glob "
        "(labels ignored). Not for tfds.")
    class_names: tuple[str, ...] = pydantic.Field(
        (), description="Class names in label-index order. idx: required. ts: display names "
        "of the header's labels. image_dir/text_dir: sub-folder names (default: all, sorted). "
        "csv/tfrecord: the label values (default csv: sorted distinct values of train).")
    validation_fraction: float = pydantic.Field(
        0.1, ge=0.0, lt=1.0, description="Share of training records moved to validation.")
    test_fraction: float = pydantic.Field(
        0.2, ge=0.0, lt=1.0, description="Share of records cut for test when no test is given.")
    num_shards: int = pydantic.Field(
        0, ge=0, le=10_000, description="TFRecord shards per split; 0: one per bundle the runner makes "
        "(no shuffle of the records through the runner: fastest).")
    max_quarantine_fraction: float = pydantic.Field(
        0.01, ge=0.0, le=1.0, description="Fail if more of the read records are rejected.")
    max_classes: int = pydantic.Field(
        1000, ge=2, le=1_000_000, description="Fail when the data has more classes (a label "
        "column of ids, one folder per image): evaluation and report grow with the classes.")
    # image_dir
    image_shape: tuple[int, int, int] | None = pydantic.Field(
        None, description="image_dir: [height, width, channels] of every example; default: "
        "the first image's size, channels 1 for grayscale files else 3. voc (required): "
        "every image is letterboxed to it, its boxes alike.")
    resize: bool = pydantic.Field(
        False, description="image_dir: resize images of another size (bilinear) instead of "
        "quarantining them.")
    # audio_dir
    sample_rate: int = pydantic.Field(
        16000, ge=1000, le=192000, description="audio_dir: every clip is resampled to this "
        "rate (Hz); the model takes samples at this rate.")
    clip_seconds: float = pydantic.Field(
        1.0, gt=0.0, le=30.0, description="audio_dir: clips are padded with zeros or cut to "
        "this length.")
    keywords: tuple[str, ...] = pydantic.Field(
        (), description="audio_dir: the words to spot; the other word folders become "
        "'unknown' and background-noise clips 'silence'. Empty: one class per word folder.")
    unknown_share: float = pydantic.Field(
        0.1, ge=0.0, le=10.0, description="audio_dir with keywords: 'unknown' clips per "
        "keyword clip of each split (chosen by a hash of the clip's id).")
    silence_share: float = pydantic.Field(
        0.1, ge=0.0, le=10.0, description="audio_dir with keywords: 'silence' clips cut from "
        "_background_noise_/ per keyword clip of each split; 0: no silence class.")
    # set from [pipeline] task by the config loader: class labels or numeric targets
    task: str = tasks.CLASSIFICATION.name
    # csv
    label_column: str | None = pydantic.Field(None, description="csv: the label column.")
    target_column: str | tuple[str, ...] | None = pydantic.Field(
        None, description="csv/tfrecord, task regression: the numeric target column(s) "
        "(tfrecord: float feature key(s)); one name or a list of them.")
    feature_columns: tuple[str, ...] = pydantic.Field(
        (), description="csv: numeric feature columns in order; default all but label/id.")
    id_column: str | None = pydantic.Field(
        None, description="csv: column with a stable record id; default '<file>:<row index>'.")
    columns_as: Literal["steps", "channels"] = pydantic.Field(
        "steps", description="csv: the feature columns become a series of steps x 1 channel "
        "(a fixed-length series) or 1 step x N channels (a table row).")
    # csv, task forecasting (components/ingest/forecast.py; target_column default "value")
    series_column: str = pydantic.Field(
        "series_id", description="csv, forecasting, long format: the column naming each row's "
        "series.")
    time_column: str = pydantic.Field(
        "timestamp", description="csv, forecasting: the time column (numbers, or dates in ISO "
        "8601).")
    covariate_columns: tuple[str, ...] = pydantic.Field(
        (), description="csv/tfrecord, forecasting: numeric columns (tfrecord: float lists) "
        "the model also reads (past covariates: known up to the forecast's origin); in the "
        "wide format, columns shared by every series.")
    format: Literal["long", "wide"] = pydantic.Field(
        "long", description="csv, forecasting: \"long\" (a row per series and timestamp) or "
        "\"wide\" (a row per timestamp, a column per series).")
    frequency: str | None = pydantic.Field(
        None, description="csv, forecasting: the series' step: a pandas frequency for dates "
        "(\"D\", \"MS\", \"QS\", \"YS\", \"h\") or a number for numeric time; default "
        "inferred per series.")
    fill: Literal["none", "previous", "interpolate"] = pydantic.Field(
        "none", description="csv, forecasting: a series with gaps, duplicate or backwards "
        "timestamps or non-numeric values is quarantined (\"none\") or repaired: sorted, the "
        "last duplicate kept, missing steps filled with the previous value or by linear "
        "interpolation. Every problem is reported by series name.")
    # set from [forecast] by the config loader (pipeline/sections.py); None for other tasks
    forecast: ForecastSection | None = None
    # text_dir
    encoding: str = pydantic.Field(
        "utf-8", description="text_dir, csv: encoding of the .txt or .csv files.")
    record_separator: str | None = pydantic.Field(
        None, min_length=1, pattern=r"^[^\r\n]+$",
        description="text_dir: when set, each .txt file holds many records separated by lines "
        "consisting of exactly this string (\"%\" for fortune files); record ids become "
        "'<class>/<file name>:<index>'. Unset: one record per file.")
    # text_corpus (task generation)
    documents: Literal["separator", "file", "blocks"] = pydantic.Field(
        "separator", description="text_corpus: how a file becomes documents: records "
        "separated by record_separator lines (default \"%\"), the whole file, or blocks of "
        "block_size characters of one long text. Splits never cut a document.")
    block_size: int = pydantic.Field(
        2000, ge=16, le=10_000_000, description="text_corpus, documents = \"blocks\": "
        "characters per block.")
    include: tuple[str, ...] = pydantic.Field(
        (), description="text_corpus: read only these files of the folder [ingest] train "
        "(names relative to it); empty: every file.")
    units: Literal["chars", "bytes"] = pydantic.Field(
        "chars", description="text_corpus: what the generator reads and writes: characters of "
        "the decoded text, or raw bytes (any file, any language; 256 symbols at most).")
    # tfrecord (and tfds, where the dataset's own spec is the default)
    feature_key: str | None = pydantic.Field(
        None, description="tfrecord/tfds: key of the input feature in the source examples.")
    feature_kind: Literal["image", "sequence", "text"] | None = pydantic.Field(
        None, description="tfrecord: 'image' (encoded PNG/JPEG bytes), 'sequence' (a float "
        "list of steps x channels) or 'text' (bytes).")
    channels: int | None = pydantic.Field(
        None, ge=1, description="tfrecord: channels of a 'sequence' feature.")
    label_key: str = pydantic.Field(
        "label", description="tfrecord/tfds: key of the label (int64 index or bytes name).")
    id_key: str | None = pydantic.Field(
        None, description="tfrecord: key of a bytes id; default '<file name>:<index>'.")
    # tfds
    name: str | None = pydantic.Field(
        None, description="tfds: catalogue name, optionally with version, e.g. "
        "'fashion_mnist' or 'mnist:3.0.1'.")
    data_dir: str | None = pydantic.Field(
        None, description="tfds: where prepared datasets live (default ~/tensorflow_datasets).")
    download: bool = pydantic.Field(
        True, description="tfds: download and prepare when the dataset is not in data_dir.")
    train_split: str = pydantic.Field("train", description="tfds: split read as train.")
    test_split: str | None = pydantic.Field(
        "test", description="tfds: split read as test (none: cut by hash).")

    @pydantic.field_validator(*PATH_FIELDS, "data_dir")
    @classmethod
    def _resolve_path(cls, value, info: pydantic.ValidationInfo):
        """Resolve against the config file's folder; a missing file is an error unless a
        fallback is configured (it is then used instead)."""
        if value is None or "://" in value:
            return value
        base = (info.context or {}).get("base_dir", ".")
        path = str((pathlib.Path(base) / os.path.expanduser(value)).resolve())
        if info.field_name != "data_dir" and not info.data.get("fallback") \
                and not glob.glob(path):
            raise ValueError(f"path does not exist: {path}")
        check_file_or_folder(path)  # /dev/zero as data would be read forever
        return path

    @pydantic.model_validator(mode="after")
    def _fields_fit_source(self):
        from edgepipe.components.ingest.sources import SOURCES

        module = SOURCES[self.source]
        allowed = set(COMMON) | set(module.FIELDS)
        unused = sorted(set(self.model_fields_set) - allowed)
        if unused:
            raise ValueError(
                f"key(s) {', '.join(unused)} are not used by source {self.source!r}; it takes "
                f"{', '.join(module.FIELDS)} besides {', '.join(COMMON[1:])}")
        task_fit.check(self)
        required = ("train",) if self.task == tasks.FORECASTING.name else module.REQUIRED
        missing = [key for key in required if getattr(self, key) in (None, ())]
        if missing:
            raise ValueError(f"source {self.source!r} needs {', '.join(missing)}")
        self._check_path_kinds()
        return self

    @property
    def target_columns(self) -> tuple[str, ...]:
        """The target column names ((): a classification source)."""
        if self.target_column is None:
            return ()
        return ((self.target_column,) if isinstance(self.target_column, str)
                else tuple(self.target_column))

    def _check_path_kinds(self) -> None:
        """A folder where a file is expected (or the reverse) is a config error naming the
        key, not a traceback from the reader."""
        kind = PATH_KINDS.get(self.source)
        for key in PATH_FIELDS:
            value = getattr(self, key)
            if kind not in ("file", "folder") or not value or "://" in value:
                continue
            path = pathlib.Path(value)
            if kind == "file" and path.is_dir():
                raise ValueError(f"{key} = {value} is a folder; the {self.source} source reads "
                                 f"a file there. Point {key} at the file itself.")
            if kind == "folder" and path.exists() and not path.is_dir():
                what = ("a folder of files" if key == "unlabeled"
                        else "a folder of class sub-folders")
                raise ValueError(f"{key} = {value} is a file; the {self.source} source reads "
                                 f"{what} there.")


def primary_files_missing(config: Config) -> list[str]:
    paths = [getattr(config, key) for key in PATH_FIELDS if getattr(config, key)]
    return [path for path in paths if "://" not in path and not glob.glob(path)]


def with_fallback(config: Config, log: logging.Logger | None = None) -> Config:
    """The config to read: the tfds fallback when the configured files are missing."""
    missing = primary_files_missing(config)
    if not config.fallback or not missing:
        return config
    name = config.fallback.split(":", 1)[1]
    (log or logging.getLogger("edgepipe")).warning(
        "ingest: %s missing; reading the fallback %s instead", missing[0], config.fallback)
    return config.model_copy(update={"source": "tfds", "name": name, "fallback": None})
