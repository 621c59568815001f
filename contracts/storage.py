"""The file layer: local paths and object-store URIs (gs://, s3://) through one set of calls.

Local paths use the standard library. URIs go through fsspec, whose gs:// file system
(gcsfs, the `gcs` extra) uses Google's JSON API and honours STORAGE_EMULATOR_HOST, so the
same code runs against a bucket, a local GCS emulator, or S3 (s3fs). Nothing here imports
TensorFlow: the model server reads a gs:// registry through this module.

An object store has no rename and no folders: a "folder" is a key prefix, and writers mark a
finished folder by writing one file last (a manifest, a metadata.json), which readers check.
"""

from __future__ import annotations

import os
import pathlib
import posixpath
from typing import Any

PathLike = str | os.PathLike


class StorageError(OSError):
    """A URI that no installed file system handles, or a store that cannot be reached."""


def is_remote(path: PathLike) -> bool:
    return "://" in os.fspath(path)


def join(base: PathLike, *parts: str) -> str:
    base = os.fspath(base)
    if is_remote(base):
        return posixpath.join(base.rstrip("/"), *(str(part).strip("/") for part in parts))
    return os.path.join(base, *map(str, parts))


def filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec file system, path within it) for a URI; StorageError saying what to install."""
    try:
        import fsspec

        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as error:
        scheme = uri.split("://", 1)[0]
        package = {"gs": "gcsfs (pip install 'edgepipe[gcs]')",
                   "s3": "s3fs (pip install s3fs)"}.get(scheme, f"an fsspec file system for {scheme}://")
        raise StorageError(f"{uri}: no installed file system handles {scheme}:// URIs "
                           f"({error}); install {package}.") from None


def listdir(folder: PathLike) -> list[str]:
    """Names of the entries directly in a folder (or under a prefix); [] when absent."""
    folder = os.fspath(folder)
    if not is_remote(folder):
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    fs, path = filesystem(folder)
    try:
        entries = fs.ls(path, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    return sorted({posixpath.basename(entry.rstrip("/")) for entry in entries} - {""})


def isfile(path: PathLike) -> bool:
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.isfile(path)
    fs, key = filesystem(path)
    try:
        return fs.isfile(key)
    except FileNotFoundError:
        return False


def isdir(path: PathLike) -> bool:
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.isdir(path)
    fs, key = filesystem(path)
    return bool(listdir(path)) or fs.isdir(key)


def read_bytes(path: PathLike) -> bytes:
    path = os.fspath(path)
    if not is_remote(path):
        return pathlib.Path(path).read_bytes()
    fs, key = filesystem(path)
    with fs.open(key, "rb") as handle:
        return handle.read()


def read_text(path: PathLike) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: PathLike, data: bytes) -> None:
    """Write a whole file. Locally through a temporary file and a rename (readers never see
    half a file); on an object store an upload is atomic by itself."""
    path = os.fspath(path)
    if not is_remote(path):
        target = pathlib.Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, target)
        return
    fs, key = filesystem(path)
    with fs.open(key, "wb") as handle:
        handle.write(data)


def upload_tree(local: pathlib.Path, remote: str, skip: tuple[str, ...] = ()) -> None:
    """Copy every file under a local folder to the same relative keys under `remote`,
    except the relative paths in `skip` (the commit marker, written last by the caller)."""
    for path in sorted(local.rglob("*")):
        relative = path.relative_to(local).as_posix()
        if path.is_file() and relative not in skip:
            write_bytes(join(remote, relative), path.read_bytes())


def download_tree(remote: str, local: pathlib.Path) -> None:
    """Copy every object under a remote folder into a local folder."""
    fs, key = filesystem(remote)
    for name in fs.find(key):
        relative = posixpath.relpath(name, key)
        target = local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open(name, "rb") as handle:
            target.write_bytes(handle.read())
