"""Which ingest keys fit [pipeline] task (edgepipe.contracts.tasks): class labels for
classification, numeric targets for regression, boxes for detection, series for forecasting, a
corpus without labels for generation. `check(config)` runs when the [ingest] Config is
validated (sources/config.py); a key that does not fit is a config error naming it."""

from __future__ import annotations

from edgepipe.contracts import tasks

# What task "forecasting" reads besides its source's keys, and the sources that read series.
FORECASTING_FIELDS = ("series_column", "time_column", "covariate_columns", "format",
                      "frequency", "fill")
SERIES_SOURCES = ("csv", "tfrecord")
# The sources that read a numeric target (regression, edgepipe.contracts.tasks).
TARGET_SOURCES = ("csv", "tfrecord")
# The sources that read boxes (detection).
BOX_SOURCES = ("voc", "coco", "box_csv")
# The source of the generation task's corpora (texts without labels).
CORPUS_SOURCE = "text_corpus"


def check(config) -> None:
    """Class labels for classification, numeric targets for regression, boxes for
    detection, series for forecasting, a corpus without labels for generation: the keys
    that say which must fit [pipeline] task."""
    if tasks.get(config.task).label == "next_character" or config.source == CORPUS_SOURCE:
        if config.source != CORPUS_SOURCE or tasks.get(config.task).label != "next_character":
            raise ValueError(
                f"[pipeline] task = {config.task!r} with source {config.source!r}: a text "
                f"generator reads a corpus (source = {CORPUS_SOURCE!r}, task = "
                "\"generation\"), and the text_corpus source has no labels for other "
                "tasks.")
        if "class_names" in config.model_fields_set:
            raise ValueError("class_names: a generation corpus has no classes.")
        return
    if (tasks.get(config.task).label == "boxes") != (config.source in BOX_SOURCES):
        raise ValueError(
            f"source {config.source!r} does not fit [pipeline] task = {config.task!r}: boxes "
            f"(task \"detection\") are read by the {list(BOX_SOURCES)} source(s) only, "
            "and those read nothing else.")
    if config.source in BOX_SOURCES:
        return
    if config.task == tasks.FORECASTING.name:
        _check_series_keys(config)
        return
    used = sorted(set(FORECASTING_FIELDS) & config.model_fields_set)
    if used:
        raise ValueError(f"{', '.join(used)}: series keys of [pipeline] task = "
                         f"\"forecasting\"; the task is {config.task!r}.")
    if tasks.get(config.task).label == "target":
        if config.source not in TARGET_SOURCES:
            raise ValueError(
                f"[pipeline] task = {config.task!r} needs numeric targets, which the "
                f"{config.source!r} source does not read; use one of {list(TARGET_SOURCES)}.")
        if not config.target_columns:
            raise ValueError(f"[pipeline] task = {config.task!r}: set target_column, the "
                             "numeric column(s) the model predicts.")
        extra = [key for key in ("label_column", "class_names")
                 if key in config.model_fields_set]
        if extra:
            raise ValueError(f"{', '.join(extra)}: class labels are not used by task "
                             f"{config.task!r}; its labels are target_column's values.")
        if len(set(config.target_columns)) != len(config.target_columns):
            raise ValueError(f"target_column {list(config.target_columns)} names a column "
                             "twice.")
        return
    if config.target_column is not None:
        raise ValueError(f"target_column: numeric targets need [pipeline] task = "
                         f"\"regression\" (the task is {config.task!r}); a classifier's "
                         "labels are label_column (csv) or label_key (tfrecord).")
    if config.source == "csv" and not config.label_column:
        raise ValueError("source 'csv' needs label_column (or, for [pipeline] task = "
                         "\"regression\", target_column)")

def _check_series_keys(config) -> None:
    if config.source not in SERIES_SOURCES:
        raise ValueError(f"[pipeline] task = \"forecasting\" reads series from "
                         f"{list(SERIES_SOURCES)}, not source {config.source!r}.")
    wrong = sorted({"label_column", "class_names", "feature_columns", "id_column",
                    "columns_as", "feature_key", "feature_kind", "channels", "label_key",
                    "id_key"} & config.model_fields_set)
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: not used by task \"forecasting\"; it reads "
                         "series_column, time_column, target_column, covariate_columns.")
    if len(config.target_columns) > 1:
        raise ValueError(f"target_column {list(config.target_columns)}: forecasting predicts "
                         "one column; name the others in covariate_columns.")
    if config.forecast is None:
        raise ValueError("task \"forecasting\" needs the [forecast] settings.")
