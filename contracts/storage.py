"""The file layer: local paths and object-store URIs (gs://, s3://) through one set of calls.

Local paths use the standard library. URIs go through fsspec: gs:// through gcsfs (the `gcs`
extra; contracts/gcs.py), which honours STORAGE_EMULATOR_HOST, so the same code runs against a
bucket or a GCS emulator on loopback; s3:// through s3fs when it is installed. No TensorFlow:
the model server reads a gs:// registry through this module.

An object store has no rename, no lock and no folders: a "folder" is a key prefix. Writers
therefore mark a finished folder by creating one small object last (a manifest, a
metadata.json), which readers check, and `create_exclusive` (GCS: ifGenerationMatch=0; locally
open(..., "xb")) lets exactly one of several racing writers create it.

Missing credentials, an unknown scheme or an unreachable bucket raise StorageError naming the
URI and what to install or set.
"""

from __future__ import annotations

import glob as _glob
import os
import pathlib
import posixpath
import shutil
from typing import Any, BinaryIO

PathLike = str | os.PathLike

PACKAGES = {"gs": "gcsfs (pip install 'edgepipe[gcs]')", "gcs": "gcsfs (pip install 'edgepipe[gcs]')",
            "s3": "s3fs (pip install s3fs)"}
class StorageError(OSError):
    """A URI that no installed file system handles, missing credentials, or a store that
    cannot be reached; the message names the URI and what to install or set."""


def is_remote(path: PathLike) -> bool:
    return "://" in os.fspath(path)


def join(base: PathLike, *parts: str) -> str:
    base = os.fspath(base)
    if is_remote(base):
        return posixpath.join(base.rstrip("/"), *(str(part).strip("/") for part in parts))
    return os.path.join(base, *map(str, parts))


def scheme(uri: PathLike) -> str:
    return os.fspath(uri).split("://", 1)[0] if is_remote(uri) else ""


def filesystem(uri: PathLike) -> tuple[Any, str]:
    """(fsspec file system, path within it) for a URI; StorageError saying what to install."""
    uri = os.fspath(uri)
    kind = scheme(uri)
    try:
        if kind in ("gs", "gcs"):
            from edgepipe.contracts import gcs

            return gcs.filesystem(os.environ.get("STORAGE_EMULATOR_HOST", "")), uri.split("://", 1)[1]
        import fsspec

        return fsspec.core.url_to_fs(uri)
    except StorageError as error:
        raise StorageError(f"{uri}: {error}") from None
    except (ImportError, ValueError) as error:
        package = PACKAGES.get(kind, f"an fsspec file system for {kind}:// URIs")
        raise StorageError(f"{uri}: no installed file system handles {kind}:// URIs "
                           f"({error}); install {package}.") from None


def check_reachable(uri: PathLike) -> None:
    """Fail early, before anything is written, when `uri` cannot be used: StorageError naming
    the URI and the cause (no file system for the scheme, no credentials, no such bucket, the
    service does not answer). A local path always passes."""
    uri = os.fspath(uri)
    if not is_remote(uri):
        return
    from edgepipe.contracts import gcs

    fs, path = filesystem(uri)
    bucket = path.split("/", 1)[0]
    where = os.environ.get("STORAGE_EMULATOR_HOST") or "the storage service"
    try:
        if scheme(uri) in ("gs", "gcs"):
            gcs.probe()
        found = fs.exists(bucket)
    except Exception as error:  # noqa: BLE001  socket, aiohttp, google-auth and HTTP errors
        raise StorageError(
            f"{uri}: cannot reach bucket {bucket!r} at {where} ({type(error).__name__}: "
            f"{error}); check the network and the credentials ({gcs.CREDENTIALS_HELP}).") from None
    if not found:
        raise StorageError(f"{uri}: bucket {bucket!r} does not exist at {where} (or these "
                           "credentials may not see it); create it (gcloud storage buckets "
                           f"create {scheme(uri)}://{bucket}) or fix the URI.")


def exists(path: PathLike) -> bool:
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.exists(path)
    fs, key = filesystem(path)
    return fs.exists(key)


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


def glob(pattern: PathLike) -> list[str]:
    """Sorted paths (URIs for a URI pattern) of the files matching a glob pattern."""
    pattern = os.fspath(pattern)
    if not is_remote(pattern):
        return sorted(path for path in _glob.glob(pattern) if os.path.isfile(path))
    fs, key = filesystem(pattern)
    return sorted(fs.unstrip_protocol(path) for path in fs.glob(key))


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


def size(path: PathLike) -> int:
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.getsize(path)
    fs, key = filesystem(path)
    return int(fs.size(key))


def open_binary(path: PathLike, mode: str = "rb") -> BinaryIO:
    """A binary stream ("rb" or "wb") of a local path or a URI."""
    path = os.fspath(path)
    if not is_remote(path):
        if "w" in mode:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return open(path, mode)
    fs, key = filesystem(path)
    if "r" in mode:  # sequential reads of small pieces: one request per 8 MiB, not per read
        return fs.open(key, mode, block_size=8 << 20, cache_type="readahead")
    return fs.open(key, mode)


def read_bytes(path: PathLike) -> bytes:
    path = os.fspath(path)
    if not is_remote(path):
        return pathlib.Path(path).read_bytes()
    fs, key = filesystem(path)
    return fs.cat_file(key)


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
    fs.pipe_file(key, data)


def write_text(path: PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def create_exclusive(path: PathLike, data: bytes) -> bool:
    """Create the file holding `data` only if nothing is there yet; True if this call created
    it, False if it existed. Of several racing writers exactly one gets True: on GCS through
    the ifGenerationMatch=0 precondition (one simple upload), locally through O_EXCL."""
    path = os.fspath(path)
    if not is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            with open(path, "xb") as handle:
                handle.write(data)
        except FileExistsError:
            return False
        return True
    fs, key = filesystem(path)
    try:
        fs.pipe_file(key, data, mode="create")
    except FileExistsError:
        return False
    return True


def makedirs(path: PathLike) -> None:
    """A local folder and its parents; nothing on an object store (prefixes need no folder)."""
    if not is_remote(path):
        os.makedirs(os.fspath(path), exist_ok=True)


def remove_tree(path: PathLike) -> None:
    """Delete a folder (or every object under a prefix); nothing if it is absent."""
    path = os.fspath(path)
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    fs, key = filesystem(path)
    try:
        fs.rm(key.rstrip("/"), recursive=True)
    except FileNotFoundError:
        pass


def upload_tree(local: PathLike, remote: str, skip: tuple[str, ...] = ()) -> None:
    """Copy every file under a local folder to the same relative keys under `remote`,
    except the relative paths in `skip` (the commit marker, written last by the caller)."""
    local = pathlib.Path(local)
    for path in sorted(local.rglob("*")):
        relative = path.relative_to(local).as_posix()
        if not path.is_file() or relative in skip:
            continue
        target = join(remote, relative)
        if is_remote(target):
            fs, key = filesystem(target)
            fs.put_file(str(path), key)
        else:
            pathlib.Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def download_tree(remote: str, local: PathLike) -> None:
    """Copy every object under a remote folder into a local folder."""
    local = pathlib.Path(local)
    if not is_remote(remote):
        shutil.copytree(remote, local, dirs_exist_ok=True)
        return
    fs, key = filesystem(remote)
    key = key.rstrip("/")
    for name in fs.find(key):
        relative = posixpath.relpath(name, key)
        target = local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(name, str(target))


def cache_dir(*parts: str) -> pathlib.Path:
    """A folder of this machine's edgepipe cache ($EDGEPIPE_CACHE_DIR, else ~/.cache/edgepipe):
    local copies of object-store folders, and the local work of stages on a remote root."""
    base = os.environ.get("EDGEPIPE_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "edgepipe")
    return pathlib.Path(base, *parts)


def local_copy(uri: PathLike, refresh: bool = False) -> pathlib.Path:
    """A local folder holding what the remote folder `uri` holds, downloaded once per machine;
    a local path is returned as it is. Only for folders that never change once written
    (a committed artifact, a registry version): later calls reuse the first copy."""
    uri = os.fspath(uri)
    if not is_remote(uri):
        return pathlib.Path(uri)
    import hashlib

    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    target = cache_dir("copies", digest, posixpath.basename(uri.rstrip("/")) or "root")
    if refresh:
        shutil.rmtree(target, ignore_errors=True)
    if target.is_dir():
        return target
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    download_tree(uri, partial)
    partial.mkdir(parents=True, exist_ok=True)  # an empty folder is a folder too
    try:
        os.rename(partial, target)
    except OSError:  # another process finished the same copy first
        shutil.rmtree(partial, ignore_errors=True)
    return target
