"""The versioned model registry: `<registry>/<model name>/<version>/`, versions 1, 2, 3...

A version folder holds saved_model/, model.tflite (the deployable variant), model.json,
labels.txt and metadata.json (lineage: run, data, metrics). On a local disk a version is built
in a dot-folder beside the versions and appears by one atomic rename, under a lock so that
concurrent pushes never take the same number. On an object store (gs://, through
tf.io.gfile, which has no atomic rename or lock) files are uploaded with metadata.json last,
and a folder without metadata.json is not a version: readers never see a half-written one
either way. Concurrent pushes to one object-store registry may still race for a number.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import shutil
import tempfile
import uuid
from typing import Any, Callable, Iterator

METADATA = "metadata.json"
LOCK = ".push.lock"


def is_remote(uri: str | os.PathLike) -> bool:
    return "://" in os.fspath(uri)


def _gfile():
    try:
        import tensorflow as tf
    except ImportError:
        raise RuntimeError(
            "A gs:// registry is read and written through tf.io.gfile, and TensorFlow is not "
            "installed here (the serving image has none). Sync the registry to a local folder "
            "(gsutil rsync, or a gcsfuse mount) and pass that folder instead."
        ) from None
    return tf.io.gfile


def join(*parts: str | os.PathLike) -> str:
    text = [os.fspath(part) for part in parts]
    if is_remote(text[0]):
        return "/".join([text[0].rstrip("/"), *(part.strip("/") for part in text[1:])])
    return os.path.join(*text)


def _listdir(folder: str) -> list[str]:
    if is_remote(folder):
        gfile = _gfile()
        return [name.rstrip("/") for name in gfile.listdir(folder)] if gfile.isdir(folder) else []
    return os.listdir(folder) if os.path.isdir(folder) else []


def _isfile(path: str) -> bool:
    if is_remote(path):
        gfile = _gfile()
        return gfile.exists(path) and not gfile.isdir(path)
    return os.path.isfile(path)


def _read_text(path: str) -> str:
    if is_remote(path):
        with _gfile().GFile(path, "r") as file:
            return file.read()
    return pathlib.Path(path).read_text()


def model_names(registry: str | os.PathLike) -> list[str]:
    """Every model name with at least one complete version, sorted."""
    root = os.fspath(registry)
    return sorted(
        name for name in _listdir(root) if not name.startswith(".") and list_versions(root, name)
    )


def list_versions(registry: str | os.PathLike, name: str) -> list[int]:
    """The complete versions of a model, ascending; [] when it has none (or does not exist)."""
    folder = join(registry, name)
    return sorted(
        int(entry) for entry in _listdir(folder)
        if entry.isdigit() and _isfile(join(folder, entry, METADATA))
    )


def latest_version(registry: str | os.PathLike, name: str) -> int | None:
    versions = list_versions(registry, name)
    return versions[-1] if versions else None


def version_path(registry: str | os.PathLike, name: str, version: int) -> str:
    return join(registry, name, str(int(version)))


def read_metadata(registry: str | os.PathLike, name: str, version: int) -> dict[str, Any]:
    path = join(version_path(registry, name, version), METADATA)
    if not _isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: model {name!r} has no complete version {version} in "
            f"{os.fspath(registry)} (versions: {list_versions(registry, name)})."
        )
    return json.loads(_read_text(path))


def find_model_key(registry: str | os.PathLike, name: str, model_key: str) -> int | None:
    """The version that already holds the model with this artifact key, if any."""
    for version in list_versions(registry, name):
        if read_metadata(registry, name, version).get("model_key") == model_key:
            return version
    return None


def publish(
    registry: str | os.PathLike,
    name: str,
    fill: Callable[[pathlib.Path], None],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Add a version holding what `fill(folder)` writes, plus metadata.json (with "version"
    and "pushed" added), unless a version already holds metadata["model_key"].

    Returns {"version", "path", "created"}; created is False when the model was there already.
    """
    registry = os.fspath(registry)
    if not name or name.startswith(".") or "/" in name:
        raise ValueError(f"Model name {name!r} cannot be a registry folder name; use letters, digits, '-', '_'.")
    model_key = metadata["model_key"]
    existing = find_model_key(registry, name, model_key)
    if existing is not None:
        return {"version": existing, "path": version_path(registry, name, existing), "created": False}
    if is_remote(registry):
        return _publish_remote(registry, name, fill, metadata)
    folder = pathlib.Path(registry, name)
    folder.mkdir(parents=True, exist_ok=True)
    # The draft lives beside the versions, on the same file system, so the rename is atomic.
    draft = folder / f".draft-{uuid.uuid4().hex}"
    draft.mkdir()
    try:
        fill(draft)
        with _locked(folder):
            existing = find_model_key(registry, name, model_key)
            if existing is not None:
                return {"version": existing, "path": str(folder / str(existing)), "created": False}
            version = _next_number(folder)
            _write_metadata(draft, metadata, version)
            os.rename(draft, folder / str(version))  # fails if the number exists: never overwrites
        return {"version": version, "path": str(folder / str(version)), "created": True}
    finally:
        shutil.rmtree(draft, ignore_errors=True)


def _publish_remote(registry: str, name: str, fill, metadata: dict[str, Any]) -> dict[str, Any]:
    gfile = _gfile()
    with tempfile.TemporaryDirectory(prefix="edgepipe-push-") as local:
        draft = pathlib.Path(local)
        fill(draft)
        folder = join(registry, name)
        taken = [int(entry) for entry in _listdir(folder) if entry.isdigit()]
        version = max(taken, default=0) + 1
        target = join(folder, str(version))
        for path in sorted(draft.rglob("*")):
            destination = join(target, path.relative_to(draft).as_posix())
            if path.is_dir():
                gfile.makedirs(destination)
            else:
                gfile.makedirs(os.path.dirname(destination))
                gfile.copy(str(path), destination, overwrite=False)
        _write_metadata(draft, metadata, version)
        gfile.copy(str(draft / METADATA), join(target, METADATA), overwrite=False)  # the commit
    return {"version": version, "path": target, "created": True}


def _next_number(folder: pathlib.Path) -> int:
    # Count every numbered folder, complete or not, so a number is never reused.
    taken = [int(entry.name) for entry in folder.iterdir() if entry.name.isdigit()]
    return max(taken, default=0) + 1


def _write_metadata(draft: pathlib.Path, metadata: dict[str, Any], version: int) -> None:
    pushed = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record = {**metadata, "version": version, "pushed": pushed}
    (draft / METADATA).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def _locked(folder: pathlib.Path) -> Iterator[None]:
    """An exclusive lock between pushes of one model (processes and threads alike)."""
    with open(folder / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
