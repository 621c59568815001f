"""`text_corpus`: a corpus for text generation (task "generation"): one or more text files (a
file, a glob or a folder, read recursively), cut into documents, each one example ("text",
no label: a generator learns every next character of its documents).

How a file becomes documents (`documents`):
- "separator" (default): records separated by lines holding exactly `record_separator`
  ("%", the format of fortune(6) files); ids "<file>:<index>".
- "file": the whole file is one document; id "<file>".
- "blocks": one long text cut into blocks of `block_size` characters; ids "<file>:<index>".

Train, validation and test are cut by a hash of each document's id (ingest's split rule), so a
document or block is never split between them. `units = "bytes"` reads the raw bytes (decoded
as latin-1: one character per byte, see edgepipe.contracts.characters); "chars" decodes the
files with `encoding` and quarantines a file that is not valid text in it. Whitespace-only
documents are quarantined (empty_text) by ingest, like every empty text.
"""

from __future__ import annotations

import os
import pathlib

from edgepipe.components.ingest.sources.common import is_uri, match, read_bytes, rejection
from edgepipe.components.ingest.sources.text_dir import split_records

KIND = "text_corpus"
FIELDS = ("train", "include", "encoding", "record_separator", "documents", "block_size",
          "units")
REQUIRED = ("train",)
CHUNK_FILES = 50


def corpus_files(train: str, include: tuple[str, ...] = ()) -> list[str]:
    """The corpus's files: a file, the files of a folder (recursively, sorted; only the
    `include`d names when given), or a glob."""
    if include:
        found = [os.path.join(train, name) if not is_uri(train) else f"{train.rstrip('/')}/{name}"
                 for name in include]
        missing = [path for path in found if not is_uri(path) and not os.path.isfile(path)]
        if missing:
            raise ValueError(f"[ingest] include: {missing[:5]} not found in the folder {train}; "
                             "list file names inside [ingest] train.")
        return found
    if not is_uri(train) and os.path.isdir(train):
        found = sorted(str(path) for path in pathlib.Path(train).rglob("*") if path.is_file()
                       and not path.name.startswith("."))
    else:
        found = match(train)
    if not found:
        raise ValueError(f"[ingest] train = {train}: no files in the corpus; point it at a "
                         "text file, a folder of text files or a glob of them.")
    return found


def files(config) -> dict[str, list[str]]:
    return {"all": corpus_files(config.train, config.include)}


def describe(config) -> dict:
    return {"feature": "text", "class_names": [], "label": "none",
            "encoding": "latin-1" if config.units == "bytes" else config.encoding,
            "units": config.units, "documents": config.documents,
            "record_separator": config.record_separator or "%",
            "block_size": config.block_size}


def read_units(config, origin: str) -> list:
    paths = corpus_files(config.train, config.include)
    base = config.train if os.path.isdir(config.train) else os.path.dirname(paths[0])
    named = [(os.path.relpath(path, base) if not is_uri(path) else path.rsplit("/", 1)[-1],
              path) for path in paths]
    return [(origin, named[start:start + CHUNK_FILES])
            for start in range(0, len(named), CHUNK_FILES)]


def read_unit(unit, config, info):
    yield unit


def documents(text: str, info: dict) -> list[tuple[str, str]]:
    """(suffix of the id, document) of one file's text."""
    if info["documents"] == "file":
        return [("", text)]
    if info["documents"] == "blocks":
        size = info["block_size"]
        return [(f":{index}", text[start:start + size])
                for index, start in enumerate(range(0, len(text), size))]
    return [(f":{index}", record)
            for index, record in enumerate(split_records(text, info["record_separator"]))]


def expand(chunk, info):
    origin, items = chunk
    for name, path in items:
        try:
            text = read_bytes(path).decode(info["encoding"])
        except UnicodeDecodeError as error:
            yield rejection(name, path, origin, "undecodable_text",
                            f"not valid {info['encoding']} text: {error}; set [ingest] "
                            "encoding, or units = \"bytes\" to model the raw bytes")
            continue
        for suffix, document in documents(text, info):
            yield {"id": name + suffix, "source": path + suffix, "origin": origin,
                   "label": None, "text": document}
