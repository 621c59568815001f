"""Helpers shared by the sources: files on local disks or URIs, snapshots, rejections."""

from __future__ import annotations

import glob
import hashlib
import os
import pathlib



def is_uri(path: str) -> bool:
    return "://" in path


def open_binary(path: str):
    """A readable binary stream of a local path or a URI (no decompression)."""
    if is_uri(path):
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.open(path, compression_type="uncompressed")
    return open(path, "rb")


def read_bytes(path: str) -> bytes:
    with open_binary(path) as stream:
        return stream.read()


def match(pattern: str) -> list[str]:
    """Sorted files matching a path or glob (local or URI)."""
    if is_uri(pattern):
        from apache_beam.io.filesystems import FileSystems

        return sorted(item.path for result in FileSystems.match([pattern])
                      for item in result.metadata_list)
    return sorted(path for path in glob.glob(pattern) if os.path.isfile(path))


def class_folders(root: str, suffixes: tuple[str, ...]) -> dict[str, list[str]]:
    """{sub-folder name: sorted files with one of the suffixes} of a one-folder-per-class tree."""
    if is_uri(root):
        files = match(root.rstrip("/") + "/*/*")
    else:
        if not os.path.isdir(root):
            raise FileNotFoundError(
                f"{root}: no such folder; point the config at a folder holding one "
                "sub-folder per class.")
        files = sorted(str(path) for path in pathlib.Path(root).glob("*/*") if path.is_file())
    by_class: dict[str, list[str]] = {}
    for path in files:
        by_class.setdefault(pathlib.PurePosixPath(path).parent.name, []).append(path)
    unused = sorted({pathlib.PurePosixPath(path).suffix for path in files}
                    - {suffix for suffix in suffixes} - {suffix.upper() for suffix in suffixes})
    kept = {name: [path for path in paths if path.lower().endswith(suffixes)]
            for name, paths in sorted(by_class.items())}
    kept = {name: paths for name, paths in kept.items() if paths}
    if not kept:
        raise ValueError(
            f"{root}: no {'/'.join(suffixes)} files in any sub-folder"
            + (f" (found only {unused})" if unused else "")
            + "; expected <root>/<class name>/<file>, one sub-folder per class.")
    return kept


def unlabeled_folder(root: str, suffixes: tuple[str, ...]) -> dict[str, list[str]]:
    """{"unlabeled/<sub-folder path>": sorted files} of a folder of unlabelled files, at any
    depth (class sub-folders, if any, are ignored: their names are not used as labels)."""
    if is_uri(root):
        files = [path for pattern in ("/*", "/*/*") for path in match(root.rstrip("/") + pattern)]
        base = root.rstrip("/")
    else:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root}: no such folder; point [ingest] unlabeled at a "
                                    "folder of files.")
        files = sorted(str(path) for path in pathlib.Path(root).rglob("*") if path.is_file())
        base = str(pathlib.Path(root))
    kept: dict[str, list[str]] = {}
    for path in sorted(files):
        if path.lower().endswith(suffixes):
            folder = str(pathlib.PurePosixPath(path[len(base):].lstrip("/")).parent)
            kept.setdefault("unlabeled" + ("" if folder == "." else "/" + folder), []).append(path)
    if not kept:
        raise ValueError(f"{root}: no {'/'.join(suffixes)} files in the unlabeled folder.")
    return kept


def file_state(path: str) -> tuple[int, float]:
    """(size, modification time) of a file: what must not change while a source is read."""
    if is_uri(path):
        from apache_beam.io.filesystems import FileSystems

        metadata = FileSystems.match([path])[0].metadata_list[0]
        return metadata.size_in_bytes, metadata.last_updated_in_seconds
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def snapshot(files: dict[str, list[str]]) -> dict[str, tuple[int, float]]:
    return {path: file_state(path) for paths in files.values() for path in paths}


def check_unchanged(before: dict[str, tuple[int, float]]) -> None:
    """Fail if a file changed (or vanished) between the two snapshots: the data is torn."""
    changed = []
    for path, state in before.items():
        try:
            now = file_state(path)
        except (OSError, IndexError):
            changed.append(f"{path} (removed)")
            continue
        if now != state:
            changed.append(f"{path} (size/mtime {state} -> {now})")
    if changed:
        raise RuntimeError(
            f"{len(changed)} source file(s) changed while ingest read them: "
            + "; ".join(changed[:5])
            + ". The written examples would mix old and new data, so nothing was committed; "
            "re-run once the files are complete (write new data elsewhere and move it in).")


def fingerprint(files: dict[str, list[str]]) -> str:
    """sha256 over each file's origin, name and content."""
    digest = hashlib.sha256()
    for origin, paths in sorted(files.items()):
        for path in paths:
            digest.update(f"{origin}\0{path}\0".encode())
            with open_binary(path) as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def rejection(record_id: str, source: str, origin: str, reason: str, detail: str) -> dict:
    return {"id": record_id, "source": source, "origin": origin, "reason": reason,
            "detail": detail}


def label_index(value: str, names: list[str], record_id: str, source: str, origin: str):
    """(index, None) for a known label; (None, rejection) for an empty or unknown one."""
    value = value.strip()
    if not value:
        return None, rejection(record_id, source, origin, "missing_label", "the label is empty")
    if value not in names:
        shown = value if len(value) <= 60 else f"{value[:60]}... ({len(value):,} characters)"
        return None, rejection(record_id, source, origin, "unknown_label",
                               f"label {shown!r} is not one of {_listed(names)}")
    return names.index(value), None


def _listed(names: list[str], most: int = 20) -> str:
    """The class names for a message: all of a few, the first `most` of many."""
    if len(names) <= most:
        return str(list(names))
    return f"the {len(names):,} class names ({', '.join(map(repr, names[:most]))}, ...)"


def folder_records(items, origin: str, names: list[str]):
    """For class-per-folder sources: (record id, path, label index, None) per file, or
    (record id, path, None, rejection) for a file in a folder that names no known class.
    Files of the unlabeled origin get no label: (record id, path, None, None)."""
    for class_name, path in items:
        record_id = f"{class_name}/{pathlib.PurePosixPath(path).name}"
        if origin == "unlabeled":
            yield record_id, path, None, None
        elif class_name in names:
            yield record_id, path, names.index(class_name), None
        else:
            yield record_id, path, None, rejection(
                record_id, path, origin, "unknown_label",
                f"class folder {class_name!r} is not one of {_listed(names)}")


def parse_targets(values: list, names: list[str], record_id: str, source: str, origin: str):
    """(float32 [k] targets, None) from one raw value per target column (text or numbers),
    or (None, rejection) naming the column that is empty, not a number or not finite."""
    import numpy as np

    parsed = []
    for name, value in zip(names, values):
        text = value.strip() if isinstance(value, str) else value
        if text is None or text == "":
            return None, rejection(record_id, source, origin, "missing_target",
                                   f"target column {name!r} is empty")
        try:
            number = float(text)
        except (TypeError, ValueError):
            return None, rejection(record_id, source, origin, "unparseable_target",
                                   f"target column {name!r} holds {str(text)[:40]!r}, "
                                   "not a number")
        if not np.isfinite(number):
            return None, rejection(record_id, source, origin, "non_finite_target",
                                   f"target column {name!r} is {text!r}")
        parsed.append(number)
    return np.asarray(parsed, dtype=np.float32), None
