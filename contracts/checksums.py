"""checksums.json of a registry version: the SHA-256 of every file, recorded at push time.

The push writes it into the version's draft folder after every other file and before
metadata.json (the commit marker), so it covers every file of the version except
metadata.json, which holds no weights. The model server verifies it when it loads a version:
a file whose bytes differ from what was pushed (a bit flip on disk, a partial copy, an edit
by hand) is refused with "checksum mismatch: <file>" instead of being served.

    {"algorithm": "sha256",
     "files": {"model.tflite": {"sha256": "<64 hex>", "size": 431912}, ...}}

Versions pushed before checksums existed have no checksums.json; `verify` says so (None) and
the caller decides (the server loads them with a warning). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any

CHECKSUMS = "checksums.json"
UNCOVERED = ("metadata.json", CHECKSUMS)  # the commit marker (written after) and this file
_BLOCK = 1 << 20


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _version_files(folder: pathlib.Path) -> list[str]:
    """Relative POSIX paths of every file under the folder, except the uncovered ones."""
    found = []
    for directory, _, names in os.walk(folder):
        for name in names:
            relative = (pathlib.Path(directory) / name).relative_to(folder).as_posix()
            if relative not in UNCOVERED:
                found.append(relative)
    return sorted(found)


def compute(folder: os.PathLike | str) -> dict[str, Any]:
    """The checksums record of every file of a local version folder."""
    folder = pathlib.Path(folder)
    return {"algorithm": "sha256",
            "files": {relative: {"sha256": sha256_file(folder / relative),
                                 "size": (folder / relative).stat().st_size}
                      for relative in _version_files(folder)}}


def write(folder: os.PathLike | str) -> None:
    """Record the checksums of a finished (draft) version folder in its checksums.json."""
    record = compute(folder)
    pathlib.Path(folder, CHECKSUMS).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def verify(folder: os.PathLike | str) -> list[str] | None:
    """The files of a local version folder whose bytes differ from checksums.json (a file
    listed there and missing counts; files added since are not checked), [] when all match,
    None when the version has no checksums.json (pushed before checksums were recorded).
    A checksums.json that cannot be read is itself a mismatch."""
    folder = pathlib.Path(folder)
    path = folder / CHECKSUMS
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        expected = {str(name): (entry["sha256"], int(entry["size"])) for name, entry in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return [CHECKSUMS]
    mismatched = []
    for relative, (sha256, size) in sorted(expected.items()):
        target = folder / relative
        if (".." in pathlib.PurePosixPath(relative).parts or not target.is_file()
                or target.stat().st_size != size or sha256_file(target) != sha256):
            mismatched.append(relative)
    return mismatched
