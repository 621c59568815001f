"""`ts`: the UEA/UCR time-series archive's `.ts` format (multivariate, variable length, labels).

A header of `@key value` lines (`@dimensions`, `@classLabel true <labels...>`, ...) and then,
after `@data`, one series per line: channels separated by ':', the values of a channel by ',',
the class label last. `?` marks a missing value. Records are float32 arrays [steps, channels];
the id is "<file name>:<series index>" and the source location "<path>:<line number>".

A line whose fields do not fit the header is rejected with its reason: wrong number of
channels, channels of different lengths, a missing value, an unparseable number, a missing or
unknown label. (A line with exactly `@dimensions` fields of which the last holds several
values is read as a series whose label is missing.)
"""

from __future__ import annotations

import pathlib

import numpy as np

from edgepipe.components.ingest.sources.common import label_index, read_bytes, rejection

KIND = "ts"
FIELDS = ("train", "test", "unlabeled")
REQUIRED = ("train",)
CHUNK_LINES = 500


def read_header(path: str, labelled: bool = True) -> dict:
    """{"dimensions", "labels", "data_line"} from a .ts file's header; errors name the file.
    An unlabelled file (`labelled` False) may say `@classLabel false`: its labels are []."""
    text = read_bytes(path).decode("utf-8", errors="replace")
    header: dict = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise ValueError(f"{path}:{number}: data before the @data line; a .ts file starts "
                             "with @-header lines and then @data.")
        key, _, value = line[1:].partition(" ")
        key = key.lower()
        if key == "data":
            header["data_line"] = number
            break
        header[key] = value.strip()
    missing = [key for key in ("dimensions", "classlabel", "data_line") if key not in header]
    if missing:
        raise ValueError(f"{path}: the .ts header lacks {', '.join('@' + k for k in missing)}; "
                         "it needs @dimensions, @classLabel true <labels> and @data.")
    label_flag, *labels = header["classlabel"].split()
    if not labelled and label_flag.lower() == "false":
        labels = []
    elif label_flag.lower() != "true" or not labels:
        raise ValueError(f"{path}: @classLabel is {header['classlabel']!r}; ingest needs class "
                         "labels (@classLabel true <label> <label> ...).")
    if header.get("univariate", "").lower() == "true":
        header["dimensions"] = header.get("dimensions", "1")
    return {"dimensions": int(header["dimensions"]), "labels": labels,
            "data_line": header["data_line"]}


def files(config) -> dict[str, list[str]]:
    found = {"train" if config.test else "all": [config.train]}
    if config.test:
        found["test"] = [config.test]
    if config.unlabeled:
        found["unlabeled"] = [config.unlabeled]
    return found


def describe(config) -> dict:
    headers = {(origin, path): read_header(path, origin != "unlabeled")
               for origin, paths in files(config).items() for path in paths}
    ((_, first_path), first), *others = headers.items()
    for (origin, path), header in others:
        for key in ("dimensions",) if origin == "unlabeled" else ("dimensions", "labels"):
            if header[key] != first[key]:
                raise ValueError(f"{path} declares {key} {header[key]} but {first_path} "
                                 f"declares {first[key]}: train and test must agree.")
    class_names = list(config.class_names or first["labels"])
    if len(class_names) != len(first["labels"]):
        raise ValueError(f"[ingest] class_names has {len(class_names)} names but {first_path} "
                         f"declares {len(first['labels'])} labels {first['labels']}: give one "
                         "name per label, in the header's order.")
    return {"feature": "sequence", "channels": first["dimensions"], "class_names": class_names,
            "label_values": first["labels"]}


def read_units(config, origin: str) -> list:
    return [(origin, path) for path in files(config)[origin]]


def read_unit(unit, config, info):
    """Read one .ts file and cut its data lines into chunks (parsed after the reshuffle)."""
    origin, path = unit
    header = read_header(path, origin != "unlabeled")
    lines = read_bytes(path).decode("utf-8", errors="replace").splitlines()
    numbered = [(number, line) for number, line in
                enumerate(lines[header["data_line"]:], start=header["data_line"] + 1)
                if line.strip() and not line.lstrip().startswith("#")]
    for start in range(0, len(numbered), CHUNK_LINES):
        yield origin, path, start, numbered[start:start + CHUNK_LINES], bool(header["labels"])


def parse_line(line: str, dimensions: int, label_values: list[str], record_id: str,
               source: str, origin: str, labelled: bool = True) -> dict:
    """One data line -> a record, or a rejection naming what is wrong with it. A line of an
    unlabelled file (`labelled` False) holds the channels only; the label of a labelled
    line of the unlabeled origin is ignored."""
    def reject(reason, detail):
        return rejection(record_id, source, origin, reason, detail)

    fields = line.strip().split(":") + ([] if labelled else ["?"])
    if len(fields) == dimensions and "," in fields[-1]:
        return reject("missing_label", f"{dimensions} channels and no class label after them")
    if len(fields) != dimensions + 1:
        return reject("wrong_channel_count",
                      f"{len(fields) - 1} channels, expected {dimensions} (@dimensions)")
    channels = []
    for channel, text in enumerate(fields[:-1]):
        values = text.split(",")
        if "?" in (value.strip() for value in values):
            return reject("missing_value", f"channel {channel} holds a missing value '?'")
        try:
            channels.append([float(value) for value in values])
        except ValueError:
            return reject("unparseable_value", f"channel {channel} holds a value that is not a "
                          f"number: {text[:60]!r}")
    lengths = {len(values) for values in channels}
    if len(lengths) > 1:
        return reject("ragged_channels", f"channels have different lengths {sorted(lengths)}")
    label, rejected = None, None
    if origin != "unlabeled":
        label, rejected = label_index(fields[-1], label_values, record_id, source, origin)
    if rejected:
        return rejected
    return {"id": record_id, "source": source, "origin": origin, "label": label,
            "sequence": np.asarray(channels, dtype=np.float32).T.copy()}


def expand(chunk, info):
    origin, path, start, numbered, labelled = chunk
    name = pathlib.PurePosixPath(path).name
    for offset, (number, line) in enumerate(numbered):
        yield parse_line(line, info["channels"], info["label_values"], f"{name}:{start + offset}",
                         f"{path}:{number}", origin, labelled)
