"""What every artifact file shares: where a file of an artifact folder is (a local path or an
object-store URI), JSON and CSV written through a temporary file and a rename (a reader, or a
resumed run, never sees half a file), and one error for a missing or unreadable file that
names it and the stage to re-run (WRITERS: each artifact kind's module registers its files).
Standard library only."""

from __future__ import annotations

import csv
import json
import os
import pathlib
from typing import Any, Iterable

from edgepipe.contracts import storage

PathLike = str | os.PathLike

# Which stage writes each file (by name): error messages say what to re-run.
WRITERS: dict[str, str] = {}


class ArtifactFileError(ValueError):
    """An artifact file is missing or unreadable; the message names it and what to re-run."""


def at(folder: PathLike, *names: str | os.PathLike) -> pathlib.Path | str:
    """A file of an artifact folder: a Path, or a URI (str) in an object-store folder."""
    if storage.is_remote(folder):
        return storage.join(folder, *(pathlib.PurePath(name).as_posix() for name in names))
    return pathlib.Path(folder, *names)


def text(path: PathLike) -> str:
    """An artifact file's text (path or URI); when missing, an ArtifactFileError naming it."""
    try:
        return storage.read_text(path)
    except FileNotFoundError:
        raise ArtifactFileError(
            f"{path} is missing: the artifact is incomplete; re-run the "
            f"{WRITERS.get(os.path.basename(path), 'stage that writes it')} stage.") from None


def read_json(path: PathLike) -> Any:
    """A JSON file of an artifact; ArtifactFileError naming it when missing or torn."""
    path = path if storage.is_remote(path) else pathlib.Path(path)
    rerun = f"re-run the {WRITERS.get(os.path.basename(path), 'stage that writes it')} stage"
    try:
        text = storage.read_text(path)
    except FileNotFoundError:
        raise ArtifactFileError(f"{path} is missing: the artifact is incomplete; {rerun}.") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise ArtifactFileError(f"{path} is not valid JSON ({error}); {rerun}.") from None


def write_json(path: PathLike, data: Any) -> None:
    """Write JSON through a temporary file and a rename: readers never see half a file (on an
    object store one upload is atomic by itself)."""
    if storage.is_remote(path):
        storage.write_text(path, json.dumps(data, indent=2) + "\n")
        return
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def write_csv(path: pathlib.Path, header: Iterable[str], rows: Iterable[list]) -> None:
    """A CSV file with a header row, through a temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(header))
        writer.writerows(rows)
    os.replace(temporary, path)
