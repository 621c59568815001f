"""`csv`: one row per example with a header row, a label column (or, for regression, numeric
target columns) and numeric feature columns.

The feature columns become the "sequence" feature: a fixed-length series of N steps x 1
channel (`columns_as = "steps"`) or one step of N channels (`columns_as = "channels"`, a table
row). The id is the `id_column` value or "<file name>:<row index>"; the source location is
"<path>:<line number>". A row with the wrong number of fields, an empty or unknown label, an
empty, non-numeric or non-finite value, or a field too long for a CSV field (Python's csv
limit, 128 KiB) is quarantined with its reason and line, as is an empty, non-numeric or
infinite target. Bytes that are not text in `encoding` (default UTF-8) fail the stage naming
the file, the line and the key to set.
"""

from __future__ import annotations

import csv as csv_module
import io
import math
import pathlib

import numpy as np

from edgepipe.components.ingest.sources.common import (label_index, parse_targets, read_bytes,
                                                      rejection)

KIND = "csv"
FIELDS = ("train", "test", "unlabeled", "label_column", "target_column", "feature_columns",
          "id_column", "columns_as", "encoding",
          # task "forecasting" (components/ingest/forecast.py)
          "series_column", "time_column", "covariate_columns", "format", "frequency", "fill")
REQUIRED = ("train",)  # and label_column or target_column, by task (sources/config.py)
CHUNK_ROWS = 2000


def files(config) -> dict[str, list[str]]:
    found = {"train" if config.test else "all": [config.train]}
    if config.test:
        found["test"] = [config.test]
    if config.unlabeled:  # the same columns; a label column there is ignored
        found["unlabeled"] = [config.unlabeled]
    return found


def _text(path: str, encoding: str) -> str:
    """The file's text; ValueError naming the file, the line and the encoding to set."""
    data = read_bytes(path)
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        return data.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}:{line}: byte 0x{data[error.start]:02x} is not {encoding} text; set [ingest] "
            "encoding to the file's encoding (e.g. encoding = \"latin-1\" or \"cp1252\"), or "
            "save the file as UTF-8.") from None
    except LookupError:
        raise ValueError(f"[ingest] encoding {encoding!r} is not an encoding Python knows; "
                         "e.g. \"utf-8\", \"latin-1\", \"cp1252\".") from None


def _rows(path: str, encoding: str = "utf-8"):
    """(line number, fields, None) of every row of a CSV file, the header first; a row the
    csv module refuses (a field over its limit, a stray quote at the end) is (line number,
    None, why), and reading goes on with the next line."""
    reader = csv_module.reader(io.StringIO(_text(path, encoding)))
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv_module.Error as error:
            yield reader.line_num, None, str(error)
            continue
        if fields:  # blank lines are not records
            yield reader.line_num, fields, None


def describe(config) -> dict:
    header_of, unlabeled = {}, None
    for origin, paths in files(config).items():
        for path in paths:
            number, header, unreadable = next(_rows(path, config.encoding), (0, None, None))
            if unreadable:
                raise ValueError(f"{path}:{number}: the header row cannot be read ({unreadable}).")
            if header is None:
                raise ValueError(f"{path}: the CSV file is empty; it needs a header row and "
                                 "one row per example.")
            header_of[path] = [name.strip() for name in header]
            unlabeled = header_of[path] if origin == "unlabeled" else unlabeled
    header = header_of[config.train]
    for path, other in header_of.items():
        if other != header and other is not unlabeled:
            raise ValueError(f"{path}: header {other} differs from {config.train}'s {header}.")
    targets = list(config.target_columns)
    labels = targets or [config.label_column]
    needed = [*labels, *config.feature_columns] + (
        [config.id_column] if config.id_column else [])
    absent = [name for name in needed if name not in header]
    if absent:
        raise ValueError(f"{config.train}: no column(s) {absent}; the header has {header}. "
                         "Fix label_column / target_column / feature_columns / id_column.")
    features = list(config.feature_columns) or [
        name for name in header if name not in (*labels, config.id_column)]
    overlap = sorted(set(features) & set(labels))
    if overlap:
        raise ValueError(f"{config.train}: column(s) {overlap} are both a feature and the "
                         "label/target; remove them from feature_columns.")
    if unlabeled is not None:
        absent = [name for name in features + [config.id_column] if name and name not in unlabeled]
        if absent:
            raise ValueError(f"{config.unlabeled}: no column(s) {absent}; the header has "
                             f"{unlabeled}. The unlabeled CSV needs the feature columns.")
    class_names = list(config.class_names)
    if not class_names and not targets:
        label = header.index(config.label_column)
        class_names = sorted({fields[label].strip() for _, fields, _ in
                              list(_rows(config.train, config.encoding))[1:]
                              if fields is not None and len(fields) == len(header)} - {""})
    return {"feature": "sequence", "class_names": class_names, "target_names": targets,
            "header": header,
            "unlabeled_header": unlabeled,
            "feature_columns": features, "label_column": config.label_column,
            "id_column": config.id_column, "columns_as": config.columns_as,
            "channels": len(features) if config.columns_as == "channels" else 1}


def read_units(config, origin: str) -> list:
    return [(origin, path) for path in files(config)[origin]]


def read_unit(unit, config, info):
    origin, path = unit
    rows = list(_rows(path, config.encoding))[1:]
    for start in range(0, len(rows), CHUNK_ROWS):
        yield origin, path, start, rows[start:start + CHUNK_ROWS]


def parse_row(number: int, fields: list[str] | None, index: int, path: str, origin: str,
              info: dict, unreadable: str | None = None) -> dict:
    header = info["unlabeled_header"] if origin == "unlabeled" else info["header"]
    source = f"{path}:{number}"
    record_id = f"{pathlib.PurePosixPath(path).name}:{index}"
    if fields is None:
        return rejection(record_id, source, origin, "unreadable_row",
                         f"line {number}: {unreadable}")
    if info["id_column"] and len(fields) == len(header):
        record_id = fields[header.index(info["id_column"])].strip() or record_id
    if len(fields) != len(header):
        return rejection(record_id, source, origin, "wrong_column_count",
                         f"{len(fields)} fields, the header has {len(header)}")
    row = dict(zip(header, fields))
    label, target, rejected = None, None, None
    if origin != "unlabeled" and info["target_names"]:
        target, rejected = parse_targets([row[name] for name in info["target_names"]],
                                         info["target_names"], record_id, source, origin)
    elif origin != "unlabeled":
        label, rejected = label_index(row[info["label_column"]], info["class_names"],
                                      record_id, source, origin)
    if rejected:
        return rejected
    values = []
    for name in info["feature_columns"]:
        text = row[name].strip()
        if not text:
            return rejection(record_id, source, origin, "missing_value", f"column {name!r} "
                             "is empty")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):  # "nan", "inf", or 400 digits, which float() makes inf
            return rejection(record_id, source, origin, "unparseable_value",
                             f"column {name!r} holds {text[:40]!r}"
                             f"{f' ({len(text):,} characters)' if len(text) > 40 else ''}, "
                             "not a finite number")
        values.append(value)
    series = np.asarray(values, dtype=np.float32)
    return {"id": record_id, "source": source, "origin": origin, "label": label,
            "target": target,
            "sequence": series[:, None] if info["columns_as"] == "steps" else series[None, :]}


def expand(chunk, info):
    origin, path, start, rows = chunk
    for offset, (number, fields, unreadable) in enumerate(rows):
        yield parse_row(number, fields, start + offset, path, origin, info, unreadable)
