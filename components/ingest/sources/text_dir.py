"""`text_dir`: one sub-folder per class of .txt files; each file is one example ("text").

The id is "<class>/<file name>", stable when files are added. A file that is not valid text
in the configured encoding, or holds only whitespace, is quarantined.

With `record_separator` (e.g. "%", the format of fortune(6) files) each file holds many
records, separated by lines that consist of exactly the separator; the ids are
"<class>/<file name>:<index>" (0-based, in file order). A separator line ends the record
before it, so a file that ends with one has no record after it; an empty record (two
separator lines in a row, or one at the start) is still a record, and ingest quarantines it
as empty_text.
"""

from __future__ import annotations


from edgepipe.components.ingest.sources.common import (class_folders, folder_records, read_bytes,
                                                        rejection, unlabeled_folder)

KIND = "text_dir"
FIELDS = ("train", "test", "unlabeled", "encoding", "record_separator")
REQUIRED = ("train",)
CHUNK_FILES = 500


def _by_class(config) -> dict[str, dict[str, list[str]]]:
    found = {"train" if config.test else "all": class_folders(config.train, (".txt",))}
    if config.test:
        found["test"] = class_folders(config.test, (".txt",))
    if config.unlabeled:
        found["unlabeled"] = unlabeled_folder(config.unlabeled, (".txt",))
    return found


def files(config) -> dict[str, list[str]]:
    return {origin: [path for paths in classes.values() for path in paths]
            for origin, classes in _by_class(config).items()}


def describe(config) -> dict:
    by_class = _by_class(config)
    first = by_class["train" if config.test else "all"]
    return {"feature": "text", "class_names": list(config.class_names or sorted(first)),
            "encoding": config.encoding, "record_separator": config.record_separator}


def read_units(config, origin: str) -> list:
    items = [(name, path) for name, paths in _by_class(config)[origin].items() for path in paths]
    return [(origin, items[start:start + CHUNK_FILES])
            for start in range(0, len(items), CHUNK_FILES)]


def read_unit(unit, config, info):
    yield unit


def expand(chunk, info):
    origin, items = chunk
    for record_id, path, label, rejected in folder_records(items, origin, info["class_names"]):
        if rejected:
            yield rejected
            continue
        try:
            text = read_bytes(path).decode(info["encoding"])
        except UnicodeDecodeError as error:
            yield rejection(record_id, path, origin, "undecodable_text",
                            f"not valid {info['encoding']} text: {error}")
            continue
        separator = info.get("record_separator")
        if separator is None:
            yield {"id": record_id, "source": path, "origin": origin, "label": label,
                   "text": text}
            continue
        for index, record in enumerate(split_records(text, separator)):
            yield {"id": f"{record_id}:{index}", "source": f"{path}:{index}", "origin": origin,
                   "label": label, "text": record}


def split_records(text: str, separator: str) -> list[str]:
    """The records of a file whose records are separated by lines holding exactly
    `separator`; each record keeps its own lines and line ends."""
    records, lines = [], []
    pieces = text.split("\n")  # not splitlines(): form feeds and the like are not line ends
    for line in [piece + "\n" for piece in pieces[:-1]] + [pieces[-1]] * bool(pieces[-1]):
        if line.rstrip("\r\n") == separator:
            records.append("".join(lines))
            lines = []
        else:
            lines.append(line)
    if lines:  # text after the last separator
        records.append("".join(lines))
    return records
